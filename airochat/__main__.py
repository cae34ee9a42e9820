from airochat.cli import main

main()
