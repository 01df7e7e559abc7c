"""report.html: success per task (bar chart with 95% intervals), latency, and rollout videos; with a failure
monitor, its score over time for a success and a failure per task, the detection table and, with recovery,
success with and without it."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from vla.data.atomic import write_bytes_atomic


def figure_png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


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
    return figure_png(fig)


def monitor_traces_png(report: dict[str, Any]) -> bytes:
    """Per task: the monitor's score over the steps of the first success and the first failure (monitored
    runs), with the alarm threshold, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["tasks"])
    threshold = report["monitor"]["threshold"]
    cols = 2 if len(tasks) > 1 else 1
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 2.2 * rows + 0.4), dpi=100, squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        eps = [e for e in report["per_episode"] if e["task"] == task and "monitor" in e]
        for ok, color in ((True, "#2a9d8f"), (False, "#e76f51")):
            e = next((x for x in eps if x["success"] == ok), None)
            if e is None:
                continue
            y = [float("nan") if v is None else v for v in e["monitor"]["score"]]
            ax.plot(range(1, len(y) + 1), y, color=color, lw=1.2,
                    label=f"{'success' if ok else 'failure'} (ep {e['episode']})")
        ax.axhline(threshold, color="#264653", ls="--", lw=1, label="threshold")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("score", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    fig.tight_layout()
    return figure_png(fig)


def _monitor_html(report: dict[str, Any]) -> str:
    m = report.get("monitor")
    if not m:
        return ""
    chart = base64.b64encode(monitor_traces_png(report)).decode()
    signals = list(m["weights"])

    def row(name: str, sec: dict[str, Any], calibrated: str) -> str:
        at = sec["at"]
        fa = sec["false_alarms"]
        cells = "".join(f"<td>{_fmt(at[p]['auroc'])}</td>" for p in ("25%", "50%", "75%"))
        sig = "".join(f"<td>{_fmt(at['50%']['signals'][s]['auroc'])}</td>" for s in signals)
        return (f"<tr><td>{html.escape(name)}</td><td>{calibrated}</td><td>{sec['failures']}/{sec['episodes']}</td>"
                f"{cells}<td>{_fmt(at['50%']['auroc_all'])}</td><td>{_fmt(at['50%'].get('auroc_own'))}</td>"
                f"<td>{_fmt(at['50%'].get('auroc_own_mean'))}</td>{sig}<td>{_fmt(sec['detection_rate'])}</td>"
                f"<td>{_fmt(sec['median_lead_steps'])}</td><td>{fa['episodes']}/{fa['successes']} "
                f"[{_fmt(fa['ci95'][0])}, {_fmt(fa['ci95'][1])}]</td>"
                f"<td>{_fmt(sec['cost_ms']['step_p50'])} / {_fmt(sec['cost_ms']['step_p99'])}</td></tr>")

    rows = [row(t, sec, "yes" if sec["calibrated_on_task"] else "held out") for t, sec in m["tasks"].items()]
    if m.get("heldout_tasks"):
        rows.append(row("tasks held out from calibration", m["heldout_tasks"], "no"))
    rows.append(row("all", m["overall"], ""))
    head = "".join(f"<th>{html.escape(s)} @50%</th>" for s in signals)
    out = f"""<h2>Failure monitor</h2>
<p>Calibration {html.escape(m['calibration'])}: threshold {m['threshold']:.3f} for a false-alarm rate of
{m['alpha']} on successes; calibrated on {html.escape(', '.join(m['calibration_tasks']) or '-')}.
AUROC of predicting the episode's failure from the highest score in the first 25/50/75% of the step budget,
over the episodes still running then ("all @50%": every episode). "own @50%": the highest ("mean": the mean)
score in the first half of each episode's own steps, every episode counted. Lead: median steps from a failure's
first alarm to its end.</p>
<img alt="monitor score over time" src="data:image/png;base64,{chart}">
<table><tr><th>task</th><th>calibrated on</th><th>failures</th><th>AUROC @25%</th><th>@50%</th><th>@75%</th>
<th>all @50%</th><th>own @50%</th><th>own mean @50%</th>{head}<th>failures detected</th><th>lead (steps)</th>
<th>false alarms [95% CI]</th>
<th>cost ms/step p50 / p99</th></tr>
{''.join(rows)}
</table>"""
    rec = report.get("recovery")
    if rec:
        def rrow(name: str, b: dict[str, Any]) -> str:
            w, r = b["without"], b["with"]
            return (f"<tr><td>{html.escape(name)}</td><td>{_fmt(w['success_rate'])} [{_fmt(w['ci95'][0])}, "
                    f"{_fmt(w['ci95'][1])}]</td><td>{_fmt(r['success_rate'])} [{_fmt(r['ci95'][0])}, "
                    f"{_fmt(r['ci95'][1])}]</td><td>{_fmt(b['gain'])} [{_fmt(b['gain_ci95'][0])}, "
                    f"{_fmt(b['gain_ci95'][1])}]</td><td>+{b['gained']} / -{b['lost']}</td>"
                    f"<td>{_fmt(b['recoveries_per_episode'])}</td><td>{b['stopped']}</td></tr>")

        rrows = [rrow(t, b) for t, b in rec["tasks"].items()] + [rrow("all", rec["overall"])]
        out += f"""
<h2>Recovery: {html.escape(rec['strategy'])} (budget {rec['budget']} per episode)</h2>
<p>{html.escape(rec['design'])}; same step budget ({report['max_steps']}).</p>
<table><tr><th>task</th><th>success without [95% CI]</th><th>with recovery</th><th>gain [95% CI, paired]</th>
<th>episodes gained / lost</th><th>recoveries per episode</th><th>stopped</th></tr>
{''.join(rrows)}
</table>"""
    return out


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else html.escape(str(v))


def _group_mean_html(mean: float | None) -> str:
    if mean is None:
        return ""
    return (f"<p>mean of the four group rates (the SmolVLA table's \"Avg\" column): <b>{mean:.3f}</b>; "
            "the headline mean above weighs each of the 50 tasks equally</p>")


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
{_group_mean_html(report.get("difficulty_group_mean"))}
<h2>Policy and latency</h2>
<table><tr><th>parameters</th><td>{pol['params']:,}</td><th>head</th><td>{html.escape(pol['head'])}</td></tr>
<tr><th>chunk</th><td>{pol['chunk']} (execute {pol['n_action_steps']})</td><th>cameras</th>
<td>{html.escape(', '.join(pol['cameras']))} @ {pol['image_size']}px</td></tr>
<tr><th>chunk inference p50 / p99</th><td>{_fmt(lat['chunk_p50'])} / {_fmt(lat['chunk_p99'])} ms</td>
<th>per step p50 / p99</th><td>{_fmt(lat['step_p50'])} / {_fmt(lat['step_p99'])} ms</td></tr></table>
<p><small>{html.escape(lat['note'])}; machine: {html.escape(str(report['machine']))}</small></p>
{_monitor_html(report)}
<h2>Tasks</h2>
<table><tr><th>task</th><th>success</th><th>n</th><th>95% CI</th><th>steps to success</th><th>instructions</th>
<th>rollouts</th></tr>
{''.join(rows)}
</table>
</body></html>
"""


def write_html_report(report: dict[str, Any], path: str | Path) -> Path:
    return write_bytes_atomic(path, render_html(report).encode())
