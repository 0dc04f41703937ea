"""nbval settings for the notebooks: offline mode, and stderr never compared.

SAM2, open_clip and torch print warnings to stderr that differ between machines and
library versions; the lessons' results are on stdout and in figures. nbval has no switch
for this, so stderr streams are dropped from both sides before its comparison.
"""
import os

os.environ.setdefault("OGCLIP_MODE", "offline")

try:
    from nbval import plugin as _plugin
except ImportError:  # nbval not installed: nothing to configure
    _plugin = None

if _plugin is not None:
    _compare = _plugin.IPyNbCell.compare_outputs

    def _drop_stderr(outputs):
        return [o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]

    def compare_outputs(self, test, ref, skip_compare=None):
        return _compare(self, _drop_stderr(test), _drop_stderr(ref), skip_compare)

    _plugin.IPyNbCell.compare_outputs = compare_outputs
