"""`crab login`, `send`, `tail`, `chats`, `invites`: the scriptable side of
crab for bots, cron jobs and shell pipes. They share `crab chat`'s saved
session (crab/tui/saved.py) and print one-line errors with exit codes
(crab/scripting/common.py: EXIT_*)."""
