"""The bottom layer's helpers every layer uses: terminal output (``console``), the range
of a seed (``seeds``), keeping the process's global state (``process_state``), and options
renamed in a public signature (``renamed``)."""
