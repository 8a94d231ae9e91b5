"""HTML pieces shared by the nightly report and the explanations: escaped text and PNG
figures inlined as ``data:`` URIs (no file, no network, no script)."""

from __future__ import annotations

import base64
import html
import io
import math
import warnings

__all__ = ["CSS", "esc", "page", "png_img"]

CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei",system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f2d3d;color:#fff;padding:16px 24px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c8d3df;font-size:13px}
nav{padding:8px 24px;background:#eef1f4;font-size:14px}nav a{margin-right:16px;color:#1f4e79}
section{padding:8px 24px 16px;border-bottom:1px solid #ddd}h2{font-size:18px;margin:16px 0 8px}
h3{font-size:15px;margin:12px 0 6px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 10px;background:#fff}
th,td{border:1px solid #d6d9dc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f0f2f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.tier{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-weight:600}
.tier-red{background:#d62728}.tier-yellow{background:#e6b800;color:#222}.tier-blue{background:#1f77b4}
.status{display:inline-block;padding:1px 8px;border-radius:3px;font-weight:600}
.status-ok{background:#d8f0d8}.status-watch{background:#ffe9a8}.status-act{background:#f7c1c1}
.status-no_reference,.status-no_data,.status-none{background:#e4e4e4}
.note{color:#666;font-size:13px}.up{color:#b00020}.down{color:#1b7f3b}
img{max-width:100%;height:auto;background:#fff;border:1px solid #e2e2e2;margin:4px 0}
details{margin:4px 0}summary{cursor:pointer;font-weight:600}
.kpi{display:inline-block;margin:4px 18px 4px 0}.kpi b{font-size:20px;display:block}
.legend td,.legend th{font-size:13px}.explain{border-left:3px solid #ccc;padding-left:10px;margin:10px 0}
"""


def esc(value) -> str:
    """``value`` as escaped HTML text; ``None`` and NaN as nothing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True)


def png_img(fig, alt: str) -> str:
    """An ``<img>`` holding ``fig`` as an inline PNG."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*[Gg]lyph.*missing from", category=UserWarning)
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def page(title: str, body: str) -> str:
    """A whole self-contained HTML page (inline CSS, no script) around ``body``."""
    return ("<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")
