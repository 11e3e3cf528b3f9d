"""Stage 3: what a run leaves and what is shown of it (the result record and store, metrics,
leaderboards, the paper's reference numbers, progress display). Never imports `train`."""
