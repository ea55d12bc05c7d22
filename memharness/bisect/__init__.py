"""`memharness bisect`: the release of a package, or the commit of a local checkout, that changed a cell's memory.

One module per job:

- `versions`: the released versions between good and bad on the index this machine reaches;
- `gitrevs`: the commits between good and bad of a local checkout (git mode);
- `base`: the base environment the per-version layers sit on, and its pins;
- `installer`: uv: plan a version against the base, build a layered virtualenv, install into it;
- `envs`: the cache of per-version environments (reused when healthy, built on demand);
- `search`: which candidate next, and what the verdicts conclude (`git bisect` with skips);
- `steps`: one step: the derived scenario, `memharness run` in the version's environment, the verdict
  with `memharness.compare`;
- `state`: the bisect folder and `bisect.json` (for `--resume`);
- `render`: the table and the conclusion;
- `driver`: all of it, end to end, with Ctrl-C and resume.

See docs/bisect.md.
"""
