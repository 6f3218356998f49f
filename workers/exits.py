"""Exit codes of a worker process, shared with the supervisor that reads them.

A configuration error has its own code (78, ``EX_CONFIG`` of BSD's sysexits.h) rather
than 2, which argparse and shells also use: the supervisor must tell "restarting will
not help, a setting is wrong" apart from a crash with certainty.
"""

EXIT_OK = 0  # clean shutdown (SIGTERM/SIGINT)
EXIT_ERROR = 1  # a crash or a fatal producer error: restart
EXIT_MEMORY = 3  # the RSS ceiling was reached (flushed first): restart
# K2_<EXCHANGE>_SYMBOLS=all and the venue's symbol listing unreadable at start (EX_UNAVAILABLE):
# restart after the backoff, the venue or the network may be back.
EXIT_UNAVAILABLE = 69
EXIT_CONFIG = 78  # a setting is unusable: do not restart, name the setting

DESCRIPTIONS = {EXIT_OK: "exited", EXIT_MEMORY: "memory ceiling", EXIT_CONFIG: "configuration error",
                EXIT_UNAVAILABLE: "symbol listing unavailable"}
