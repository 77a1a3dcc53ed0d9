"""Running a suite: the run config, planning (load and render everything first), executing through the
request cache, scoring cells."""
