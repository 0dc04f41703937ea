"""widgets.panel: headless fallback draws the default figure once, with the default values."""
import matplotlib

matplotlib.use("Agg")

from ogclip_utils import widgets  # noqa: E402


def test_headless_panel_draws_defaults(monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setenv("OGCLIP_HEADLESS", "1")
    seen = []

    def draw(a, b):
        seen.append((a, b))
        fig, _ = plt.subplots()
        return fig

    fig = widgets.panel(draw, dict(a=(0.0, 1.0, 0.1), b=["x", "y"]), dict(a=0.3, b="y"))
    assert seen == [(0.3, "y")] and hasattr(fig, "savefig")
    assert not plt.fignum_exists(fig.number)  # closed: a cell shows it exactly once


def test_headless_flag_values(monkeypatch):
    for v, want in (("1", True), ("true", True), ("0", False), ("", False), ("no", False)):
        monkeypatch.setenv("OGCLIP_HEADLESS", v)
        assert widgets.headless() is want
    monkeypatch.delenv("OGCLIP_HEADLESS")
    assert widgets.headless() is False
