"""cupyx.scipy for the fake CuPy: only `special.erf`."""
