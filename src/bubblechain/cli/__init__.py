"""The `bubblechain` command line, a thin layer over the library."""
