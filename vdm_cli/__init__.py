"""The ``vdm`` command line, above the core (vdm/) and its faces (tui/, animations/).

main (the program), args (the options of each command), train (vdm train), commands (the core's
other commands), faces (render, slides, tui), errors (CommandError and the exit status).
"""
