"""DIR/report.html of ``vla adapt``: the learning curve (adaptation and baseline) and the per-task table."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from vla.data.atomic import write_bytes_atomic
from vla.eval.report_html import figure_png


def curve_png(result: dict[str, Any]) -> bytes:
    """Success per round: adaptation and, when run, the extra-demonstrations baseline (round 0: the given policy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = result["initial"]["success_rate"] if result.get("initial") else None
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=110)
    xs = [0] * (start is not None) + [r["round"] for r in result["rounds"]]
    ys = [start] * (start is not None) + [r["success_rate"] for r in result["rounds"]]
    ax.plot(xs, ys, "o-", color="#2a9d8f", label="adaptation")
    base = (result.get("baseline") or {}).get("rounds") or []
    if base:
        bx = [0] * (start is not None) + [r["round"] for r in base]
        by = [start] * (start is not None) + [r["success_rate"] for r in base]
        ax.plot(bx, by, "s--", color="#e76f51", label="extra scripted demos (baseline)")
    ax.set_ylim(0, 1)
    ax.set_xlabel("round")
    ax.set_ylabel("mean success (train instructions)")
    ax.set_xticks(sorted(set(xs)))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return figure_png(fig)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def render_html(result: dict[str, Any], png: bytes | None = None) -> str:
    png = png if png is not None else curve_png(result)
    chart = base64.b64encode(png).decode()
    rounds = result["rounds"]
    base = {r["round"]: r for r in ((result.get("baseline") or {}).get("rounds") or [])}
    rows = []
    for r in rounds:
        b = base.get(r["round"])
        rows.append(f"<tr><td>{r['round']}</td><td>{r['success_rate']:.3f}</td>"
                    f"<td>{_pct(b['success_rate']) if b else '-'}</td><td>{r['rollouts']}</td>"
                    f"<td>{r['interventions']} ({r['intervention_rate']:.2f})</td><td>{r['episodes_added']}</td>"
                    f"<td>{r['dataset_episodes']}</td><td>{r['minutes']:.1f}</td></tr>")
    task_rows = []
    if rounds:
        last = rounds[-1]
        first = result.get("initial") or {"tasks": {}}
        lb = base.get(last["round"])
        for task, t in last["tasks"].items():
            start = first["tasks"].get(task, {}).get("success_rate")
            bt = lb["tasks"].get(task, {}).get("success_rate") if lb else None
            task_rows.append(
                f"<tr><td>{html.escape(task)}</td><td>{_pct(start)}</td><td>{t['success_rate']:.2f}</td>"
                f"<td>[{t['ci95'][0]:.2f}, {t['ci95'][1]:.2f}]</td><td>{_pct(bt)}</td>"
                f"<td>{sum(x['tasks'][task]['interventions'] for x in rounds)}</td>"
                f"<td>{sum(x['tasks'][task]['episodes_added'] for x in rounds)}</td></tr>")
    summary = result.get("summary") or {}
    verdict = html.escape(summary.get("verdict", "no baseline run" if result.get("baseline") is None else ""))
    s = result["settings"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>vla adapt</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
.verdict{{font-size:1.1em;font-weight:600}}</style></head><body>
<h1>Online adaptation: {html.escape(str(s['policy']))} on {html.escape(s['suite'])}</h1>
<p>mode {html.escape(s['mode'])}, {s['rounds']} round(s) x {s['episodes_per_round']} rollouts,
{s['steps_per_round']} fine-tuning steps per round, {s['eval_episodes']} evaluation episodes per task
(train instructions, evaluation seeds); round 0 is the given policy.</p>
<p class="verdict">{verdict}</p>
<img src="data:image/png;base64,{chart}" alt="learning curve">
<h2>Rounds</h2><table><tr><th>round</th><th>success</th><th>baseline</th><th>rollouts</th>
<th>interventions (rate)</th><th>episodes added</th><th>dataset episodes</th><th>minutes</th></tr>
{''.join(rows)}</table>
<h2>Per task (after the last round)</h2><table><tr><th>task</th><th>start</th><th>adapted</th><th>95% CI</th>
<th>baseline</th><th>interventions</th><th>episodes added</th></tr>{''.join(task_rows)}</table>
</body></html>"""


def write_report(result: dict[str, Any], out: Path) -> None:
    """DIR/report.html and DIR/learning_curve.png, each written atomically."""
    png = curve_png(result)
    write_bytes_atomic(out / "learning_curve.png", png)
    write_bytes_atomic(out / "report.html", render_html(result, png).encode())
