"""A user tool for plan tests: records its argv and stdin as JSON in $REC_FILE, then behaves
as its first argument asks (`hang`, `flood`, `fail`) or prints what it was given."""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    data = sys.stdin.read()
    args = sys.argv[1:]
    with open(os.environ["REC_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps({"argv": args, "stdin": data}) + "\n")
    mode = args[0] if args else ""
    if mode == "hang":
        time.sleep(60)
    elif mode == "flood":  # 100 MB on stdout
        chunk = "x" * (1 << 20)
        for _ in range(100):
            sys.stdout.write(chunk)
    elif mode == "esc":  # a terminal title, colour and a bell
        print("\x1b]0;owned\x07\x1b[31mRED\x1b[0m \x9b2J \u202eevil")
    elif mode == "lines":  # evidence of several lines
        print("first line\nsecond line\nthird line")
    elif mode == "fail":
        print("it went wrong", file=sys.stderr)
        sys.exit(3)
    else:
        print(f"got {len(args)} argument(s): {args!r}")


if __name__ == "__main__":
    main()
