"""Hub downloads with the real huggingface_hub client against a loopback Hub (HF_ENDPOINT)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import airochat_exe, popen_cli, run_cli
from tests.hub_server import HubServer, Repo

REPO = "airo/tiny-airoboros-7b-GGUF"


@pytest.fixture
def hub(tmp_path: Path, tiny_gguf: Path) -> Iterator[tuple[HubServer, dict[str, str]]]:
    server = HubServer().start()
    model = tiny_gguf.read_bytes()
    server.state.repos[REPO] = Repo(
        files={
            "tiny-airoboros-7b.Q4_K_M.gguf": model,
            "tiny-airoboros-7b.Q8_0.gguf": model + b"\0" * 64,  # a different blob
            "tiny-airoboros-7b.F16.gguf": model + b"\0" * 128,
            "README.md": b"# tiny",
        },
        listed_size={"tiny-airoboros-7b.F16.gguf": 400 * 2**30},
    )  # too big for this machine
    env = {
        "HF_ENDPOINT": server.url,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
    }
    yield server, env
    server.stop()


def blobs(env: dict[str, str], repo: str = REPO) -> list[Path]:
    d = Path(env["HF_HOME"]) / "hub" / f"models--{repo.replace('/', '--')}" / "blobs"
    return sorted(p for p in d.iterdir()) if d.exists() else []


def test_pull_by_tag_case_insensitive(hub: tuple[HubServer, dict[str, str]]) -> None:
    _, env = hub
    proc = run_cli("pull", f"{REPO}:q4_k_m", env=env)
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip())
    assert path.name == "tiny-airoboros-7b.Q4_K_M.gguf" and path.is_file()
    assert str(path).startswith(env["HF_HOME"])  # the standard HF cache, shared with llama.cpp
    assert "sha256 verified" in proc.stderr
    again = run_cli("pull", f"{REPO}:Q4_K_M", env=env)
    assert again.returncode == 0 and "already here" in again.stderr


def test_pull_picks_best_quant_that_fits_and_says_why(
    hub: tuple[HubServer, dict[str, str]],
) -> None:
    _, env = hub
    proc = run_cli("pull", REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("tiny-airoboros-7b.Q8_0.gguf")
    assert "Q8_0 is the best quality that fits" in proc.stderr and "F16 would not" in proc.stderr


def test_then_run_from_cache_offline(hub: tuple[HubServer, dict[str, str]]) -> None:
    server, env = hub
    assert run_cli("pull", f"{REPO}:Q4_K_M", env=env).returncode == 0
    server.stop()  # the Hub is gone
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    proc = run_cli(
        "ask", f"{REPO}:Q4_K_M", "hello", "--max-tokens", "3", "--threads", "1", env=offline
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("ask", f"{REPO}:Q8_0", "hello", env=offline)
    assert (
        proc.returncode == 1 and "not downloaded" in proc.stderr and "HF_HUB_OFFLINE" in proc.stderr
    )


def test_connection_dropped_mid_file_resumes(hub: tuple[HubServer, dict[str, str]]) -> None:
    """huggingface_hub writes in 10 MiB chunks; a drop after the first chunk resumes with Range."""
    server, env = hub
    big = server.state.repos[REPO].files["tiny-airoboros-7b.Q4_K_M.gguf"] + b"\0" * (24 << 20)
    server.state.repos["airo/big-GGUF"] = Repo(
        files={"big.Q4_K_M.gguf": big}, drop_after={"big.Q4_K_M.gguf": 12 << 20}
    )
    proc = run_cli("pull", "airo/big-GGUF", env=env)
    assert proc.returncode == 0, proc.stderr
    ranges = [r for m, p, r in server.state.requests if m == "GET" and p.endswith(".gguf")]
    assert ranges[0] == "" and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    assert "sha256 verified" in proc.stderr
    assert Path(proc.stdout.strip()).stat().st_size == len(big)


def test_wrong_sha256_is_deleted_and_never_used(hub: tuple[HubServer, dict[str, str]]) -> None:
    server, env = hub
    server.state.repos[REPO].wrong_sha.add("tiny-airoboros-7b.Q4_K_M.gguf")
    proc = run_cli("pull", f"{REPO}:Q4_K_M", env=env)
    assert proc.returncode == 1 and "failed verification" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert blobs(env) == []  # nothing left to be mistaken for the model
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    proc = run_cli("ask", f"{REPO}:Q4_K_M", "hi", env=offline)
    assert proc.returncode == 1 and "not downloaded" in proc.stderr


def test_unverified_cached_file_is_checked_before_use(
    hub: tuple[HubServer, dict[str, str]],
) -> None:
    """A blob tampered with after download (or fetched by another tool) is hashed before use."""
    _, env = hub
    path = Path(run_cli("pull", f"{REPO}:Q4_K_M", env=env).stdout.strip())
    blob = path.resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    marker_dir = Path(os.environ["XDG_CACHE_HOME"]) / "airochat" / "verified"
    for m in marker_dir.glob(blob.name):
        m.unlink()  # as if never verified by airochat
    proc = run_cli("ask", f"{REPO}:Q4_K_M", "hi", env={**env, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1 and "is damaged" in proc.stderr and "pull" in proc.stderr
    assert blob.read_bytes() == bytes(data)  # reported, never used, not silently deleted
    proc = run_cli("pull", f"{REPO}:Q4_K_M", env=env)  # asked to pull: fetched again
    assert proc.returncode == 0 and "fetching it again" in proc.stderr, proc.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == blob.name


def test_sharded_files_download_together(hub: tuple[HubServer, dict[str, str]]) -> None:
    server, env = hub
    server.state.repos["airo/sharded-GGUF"] = Repo(
        files={
            "m-Q4_K_M-00001-of-00002.gguf": b"part one",
            "m-Q4_K_M-00002-of-00002.gguf": b"part two",
        }
    )
    proc = run_cli("pull", "airo/sharded-GGUF", env=env)
    assert proc.returncode == 0, proc.stderr
    first = Path(proc.stdout.strip())
    assert first.name == "m-Q4_K_M-00001-of-00002.gguf"
    assert (first.parent / "m-Q4_K_M-00002-of-00002.gguf").read_bytes() == b"part two"


@pytest.mark.parametrize(
    ("model", "code", "message"),
    [
        ("airo/missing-GGUF", 1, "no such repo on the Hub: airo/missing-GGUF (404)"),
        ("airo/gated-GGUF", 1, "gated or private (401)"),
        (f"{REPO}:Q3_K_S", 2, "has no Q3_K_S quant; it has: F16, Q4_K_M, Q8_0"),
        ("airo/empty-GGUF", 1, "has no GGUF model files"),
        ("airo/x/../../etc/passwd.gguf", 1, "not a plain path inside the repo"),
    ],
)
def test_pull_errors(
    hub: tuple[HubServer, dict[str, str]], model: str, code: int, message: str
) -> None:
    server, env = hub
    server.state.repos["airo/gated-GGUF"] = Repo(files={"g.Q4_K_M.gguf": b"x"}, gated=True)
    server.state.repos["airo/empty-GGUF"] = Repo(files={"README.md": b"nothing"})
    proc = run_cli("pull", model, env={**env, "HF_TOKEN": ""})
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_disk_space_checked_before_download(hub: tuple[HubServer, dict[str, str]]) -> None:
    _, env = hub
    proc = run_cli("pull", f"{REPO}:F16", env=env)  # listed as 400 GiB
    assert proc.returncode == 1 and "not enough disk space" in proc.stderr
    assert "needs 400.00 GiB" in proc.stderr
    assert blobs(env) == []


def test_ctrl_c_leaves_nothing_that_looks_complete(hub: tuple[HubServer, dict[str, str]]) -> None:
    server, env = hub
    server.state.repos["airo/slow-GGUF"] = Repo(
        files={"s.Q4_K_M.gguf": b"\1" * (4 << 20)}, slow=True
    )
    proc = popen_cli("pull", "airo/slow-GGUF", env=env)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()
    assert all(p.name.endswith(".incomplete") for p in blobs(env, "airo/slow-GGUF"))
    snaps = Path(env["HF_HOME"]) / "hub" / "models--airo--slow-GGUF" / "snapshots"
    assert not list(snaps.rglob("*.gguf")) if snaps.exists() else True
    proc2 = run_cli("ask", "airo/slow-GGUF", "hi", env={**env, "HF_HUB_OFFLINE": "1"})
    assert proc2.returncode == 1 and "not downloaded" in proc2.stderr


def test_ask_downloads_only_with_yes(hub: tuple[HubServer, dict[str, str]]) -> None:
    _, env = hub
    proc = run_cli("ask", f"{REPO}:Q4_K_M", "hi", env=env)
    assert proc.returncode == 1 and "airochat pull" in proc.stderr and "--yes" in proc.stderr
    proc = run_cli(
        "ask", f"{REPO}:Q4_K_M", "hi", "--yes", "--max-tokens", "2", "--threads", "1", env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout  # the progress bar went to stderr


def test_models_and_rm(hub: tuple[HubServer, dict[str, str]]) -> None:
    _, env = hub
    run_cli("pull", f"{REPO}:Q4_K_M", env=env)
    run_cli("pull", f"{REPO}:Q8_0", env=env)
    rows = json.loads(run_cli("models", "--json", env=env).stdout)
    here = {(r["repo"], r["quant"]) for r in rows if r["downloaded"]}
    assert {(REPO, "Q4_K_M"), (REPO, "Q8_0")} <= here
    assert any(r["alias"] == "airoboros-l2-13b-2.0" and not r["downloaded"] for r in rows)
    proc = run_cli("rm", f"{REPO}:Q8_0", env=env)
    assert proc.returncode == 0 and "removed 1 file" in proc.stdout
    assert len(blobs(env)) == 1
    proc = run_cli("rm", REPO, env=env)
    assert proc.returncode == 0 and blobs(env) == []
    proc = run_cli("rm", REPO, env=env)
    assert proc.returncode == 1 and "not downloaded" in proc.stderr


def test_run_asks_before_downloading(
    hub: tuple[HubServer, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pexpect

    _, env = hub
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = pexpect.spawn(
        airochat_exe(),
        ["run", f"{REPO}:Q4_K_M", "--threads", "1"],
        env={**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1"},
        encoding="utf-8",
        timeout=60,
    )
    child.expect(r"Download airo/tiny-airoboros-7b-GGUF Q4_K_M \(0\.00 GiB\)\? \[y/N\]")
    child.sendline("n")
    child.expect("download cancelled")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2 and blobs(env) == []
    child = pexpect.spawn(
        airochat_exe(),
        ["run", f"{REPO}:Q4_K_M", "--threads", "1"],
        env={**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1"},
        encoding="utf-8",
        timeout=60,
    )
    child.expect(r"\[y/N\]")
    child.sendline("y")
    child.expect_exact(">>>")  # downloaded, verified, loaded
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and len(blobs(env)) == 1


def _halves(data: bytes) -> tuple[bytes, bytes]:
    mid = len(data) // 2 + 17  # not on any round boundary
    return data[:mid], data[mid:]


@pytest.mark.parametrize(
    ("names", "joined"),
    [
        (("m.Q6_K.gguf-split-a", "m.Q6_K.gguf-split-b"), "m.Q6_K.gguf"),
        (("m.Q6_K.gguf.part1of2", "m.Q6_K.gguf.part2of2"), "m.Q6_K.gguf"),
    ],
    ids=["split-a-b", "part-n-of-m"],
)
def test_split_quants_are_verified_joined_and_run_offline(
    hub: tuple[HubServer, dict[str, str]], tiny_gguf: Path, names: tuple[str, str], joined: str
) -> None:
    server, env = hub
    model = tiny_gguf.read_bytes()
    a, b = _halves(model)
    server.state.repos["airo/split-GGUF"] = Repo(
        files={names[0]: a, names[1]: b, "m.Q4_K_M.gguf": model},
        drop_after={names[1]: len(b) // 3},  # the second part's connection drops once
    )
    proc = run_cli("pull", "airo/split-GGUF:Q3_K_S", env=env)
    assert "Q6_K (2 parts)" in proc.stderr  # the listing shows split quants as such
    proc = run_cli("pull", "airo/split-GGUF:q6_k", env=env)
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip())
    assert path.name == joined and path.read_bytes() == model
    assert "joining the 2 parts" in proc.stderr
    gets = [r for r in server.state.requests if r[0] == "GET" and r[1].endswith(names[1])]
    assert len(gets) == 2  # the dropped part was fetched again, within the same pull
    assert not [p for p in path.parent.iterdir() if "part" in p.name or "split" in p.name]
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    ask = run_cli("ask", "airo/split-GGUF:Q6_K", "hi", "--max-tokens", "2", env=offline)
    assert ask.returncode == 0, ask.stderr
    again = run_cli("pull", "airo/split-GGUF:Q6_K", env=env)
    assert again.returncode == 0 and "already here" in again.stderr  # no parts fetched again
    removed = run_cli("rm", "airo/split-GGUF:Q6_K", env=env)
    assert removed.returncode == 0 and not path.exists()


def test_a_lying_part_is_refused_and_nothing_is_joined(
    hub: tuple[HubServer, dict[str, str]], tiny_gguf: Path
) -> None:
    server, env = hub
    a, b = _halves(tiny_gguf.read_bytes())
    names = ("m.Q6_K.gguf-split-a", "m.Q6_K.gguf-split-b")
    server.state.repos["airo/split-GGUF"] = Repo(files=dict(zip(names, (a, b), strict=True)))
    server.state.repos["airo/split-GGUF"].wrong_sha.add(names[1])
    proc = run_cli("pull", "airo/split-GGUF:Q6_K", "--keep-parts", env=env)
    assert proc.returncode == 1 and "failed verification" in proc.stderr
    repo = Path(env["HF_HOME"]) / "hub" / "models--airo--split-GGUF"
    assert not list(repo.rglob("m.Q6_K.gguf"))  # nothing joined, nothing taken for the model
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    ask = run_cli("ask", "airo/split-GGUF:Q6_K", "hi", env=offline)
    assert ask.returncode == 1 and "not downloaded" in ask.stderr


def test_the_pick_counts_a_split_quant_whole(
    hub: tuple[HubServer, dict[str, str]], tiny_gguf: Path
) -> None:
    server, env = hub
    model = tiny_gguf.read_bytes()
    a, b = _halves(model)
    server.state.repos["airo/split-GGUF"] = Repo(
        files={"m.Q8_0.gguf-split-a": a, "m.Q8_0.gguf-split-b": b, "m.Q4_K_M.gguf": model},
        listed_size={"m.Q8_0.gguf-split-a": 300 * 2**30, "m.Q8_0.gguf-split-b": 300 * 2**30},
    )
    proc = run_cli("pull", "airo/split-GGUF", env=env)
    assert proc.returncode == 0 and "Q4_K_M is the best quality that fits" in proc.stderr


def test_zip_volumes_of_a_ggml_model_are_joined_extracted_and_converted(
    hub: tuple[HubServer, dict[str, str]], tmp_path: Path
) -> None:
    import io
    import zipfile

    from tests.legacy_model import write_ggjt_v3

    server, env = hub
    legacy = write_ggjt_v3(tmp_path / "src.bin").read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("airoboros-65b-gpt4-1.4.1-PI-8192.ggmlv3.q6_K.bin", legacy)
    a, b = _halves(buf.getvalue())
    stem = "airoboros-65b-gpt4-1.4.1-PI-8192.ggmlv3.q6_K.bin.zip"
    server.state.repos["ycros/airoboros-65b-gpt4-1.4.1-PI-8192-GGML"] = Repo(
        files={f"{stem}.001": a, f"{stem}.002": b}
    )
    proc = run_cli("pull", "airoboros-65b-1.4.1-pi:Q6_K", env=env)
    assert proc.returncode == 0, proc.stderr
    out = Path(proc.stdout.strip())
    assert out.name == "airoboros-65b-gpt4-1.4.1-PI-8192.ggmlv3.q6_K.gguf"
    assert out.with_suffix(".bin").read_bytes() == legacy
    assert "converted from GGML" in proc.stderr
    info = run_cli(
        "info", "airoboros-65b-1.4.1-pi:Q6_K", "--json", env={**env, "HF_HUB_OFFLINE": "1"}
    )
    assert info.returncode == 0, info.stderr
