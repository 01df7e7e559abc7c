"""report.html: success per task (bar chart with 95% intervals), latency, and rollout videos."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from vla.data.atomic import write_bytes_atomic


def success_chart_png(report: dict[str, Any]) -> bytes:
    """Horizontal bar chart of per-task success with Wilson 95% intervals, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["tasks"])
    rates = [report["tasks"][t]["success_rate"] for t in tasks]
    # clamp: the Wilson bound at 10/10 is 1 - 1e-16 in floating point
    lo = [max(0.0, r - report["tasks"][t]["ci95"][0]) for t, r in zip(tasks, rates, strict=True)]
    hi = [max(0.0, report["tasks"][t]["ci95"][1] - r) for t, r in zip(tasks, rates, strict=True)]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(tasks) + 1.2), dpi=110)
    colors = ["#2a9d8f" if r >= 0.8 else "#e9c46a" if r >= 0.5 else "#e76f51" for r in rates]
    ax.barh(tasks, rates, xerr=[lo, hi], color=colors, ecolor="#333", capsize=3)
    ax.axvline(report["success_rate"], color="#264653", ls="--", lw=1, label=f"mean {report['success_rate']:.2f}")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("success rate (95% Wilson interval)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else html.escape(str(v))


def render_html(report: dict[str, Any]) -> str:
    chart = base64.b64encode(success_chart_png(report)).decode()
    rows = []
    for task, t in report["tasks"].items():
        vids = "".join(
            f'<figure><video src="{html.escape(path)}" controls muted loop preload="metadata" width="256"></video>'
            f"<figcaption>{kind}</figcaption></figure>"
            for kind, path in sorted(t["videos"].items(), key=lambda kv: kv[0] != "success")
        )
        rows.append(
            f"<tr><td>{html.escape(task)}</td><td>{t['success_rate']:.2f}</td>"
            f"<td>{t['successes']}/{t['episodes']}</td>"
            f"<td>[{t['ci95'][0]:.2f}, {t['ci95'][1]:.2f}]</td><td>{_fmt(t['mean_steps_to_success'])}</td>"
            f"<td class='instr'>{'<br>'.join(html.escape(i) for i in t['instructions'])}</td>"
            f"<td class='vids'>{vids}</td></tr>"
        )
    lat = report["latency_ms"]
    pol = report["policy"]
    groups = "".join(f"<tr><td>{html.escape(g.replace('_', ' '))}</td><td>{v['tasks']}</td>"
                     f"<td>{v['success_rate']:.3f}</td><td>{v['successes']}/{v['episodes']}</td></tr>"
                     for g, v in (report.get("difficulty") or {}).items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vla eval: {html.escape(report['suite'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 4px 10px; vertical-align: top; }}
th {{ text-align: left; background: #f4f4f4; }} .instr {{ font-size: 0.85em; color: #555; max-width: 18em; }}
.vids figure {{ display: inline-block; margin: 0 8px 0 0; }} figcaption {{ font-size: 0.8em; text-align: center; }}
.big {{ font-size: 1.6em; font-weight: 600; }}
</style></head><body>
<h1>Evaluation: {html.escape(report['suite'])} ({html.escape(report['split'])} instructions)</h1>
<p class="big">mean success {report['success_rate']:.3f}</p>
<p>{report['episodes']} episodes ({report['episodes_per_task']} per task), seed {report['seed']},
max {report['max_steps']} steps, {report['workers']} worker(s), {report['wall_time_s']:.0f} s wall time.
Instructions file: {_fmt(report.get('instructions_file'))}.</p>
<h2>Success per task</h2>
<img alt="success per task" src="data:image/png;base64,{chart}">
<h2>By MT50 difficulty group</h2>
<table><tr><th>group</th><th>tasks</th><th>mean success</th><th>episodes</th></tr>{groups}</table>
<h2>Policy and latency</h2>
<table><tr><th>parameters</th><td>{pol['params']:,}</td><th>head</th><td>{html.escape(pol['head'])}</td></tr>
<tr><th>chunk</th><td>{pol['chunk']} (execute {pol['n_action_steps']})</td><th>cameras</th>
<td>{html.escape(', '.join(pol['cameras']))} @ {pol['image_size']}px</td></tr>
<tr><th>chunk inference p50 / p99</th><td>{_fmt(lat['chunk_p50'])} / {_fmt(lat['chunk_p99'])} ms</td>
<th>per step p50 / p99</th><td>{_fmt(lat['step_p50'])} / {_fmt(lat['step_p99'])} ms</td></tr></table>
<p><small>{html.escape(lat['note'])}; machine: {html.escape(str(report['machine']))}</small></p>
<h2>Tasks</h2>
<table><tr><th>task</th><th>success</th><th>n</th><th>95% CI</th><th>steps to success</th><th>instructions</th>
<th>rollouts</th></tr>
{''.join(rows)}
</table>
</body></html>
"""


def write_html_report(report: dict[str, Any], path: str | Path) -> Path:
    return write_bytes_atomic(path, render_html(report).encode())
