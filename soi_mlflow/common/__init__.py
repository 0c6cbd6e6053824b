"""The bottom layer's helpers every layer uses: terminal output (``console``), the range
of a seed (``seeds``), and keeping the process's global state (``process_state``)."""
