"""CLI: ``vla serve --policy RUN [--host 127.0.0.1] [--port 8000] [--api-key-file F] [--safety F] [--monitor F]``.

A policy of several robots takes ``--safety ROBOT=F`` once per robot (``vla.serve.safety_options``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from vla.serve.safety_options import SafetyChoice


def read_api_key(path: Path | None) -> str | None:
    """The key in ``path`` (surrounding white space stripped), or None without a file."""
    if path is None:
        return None
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the API key file ({exc.strerror})") from exc
    if not key or any(c.isspace() for c in key):
        raise ValueError(f"{path}: expected one API key without white space")
    return key


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def safety_label(choice: SafetyChoice) -> str:
    """``; safety: name`` for one config, ``; safety: robot: name, ...`` for one per robot, '' for none."""
    if choice is None:
        return ""
    if isinstance(choice, dict):
        return "; safety: " + ", ".join(f"{robot}: {cfg.name}" for robot, cfg in choice.items())
    return f"; safety: {choice.name}"


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        policy: Path = typer.Option(..., "--policy", help="Policy folder or training run folder (RUN/policy)."),
        host: str = typer.Option("127.0.0.1", help="Address to bind (a non-loopback one needs --api-key-file)."),
        port: int = typer.Option(8000, help="TCP port (websocket and GET /healthz)."),
        api_key_file: Path | None = typer.Option(None, help="File holding the API key clients must send."),
        safety: list[str] | None = typer.Option(None, help="Safety config (YAML/JSON file, or 'metaworld_sawyer'); "
                                                "a policy of several robots: ROBOT=CONFIG, once per robot."),
        device: str = typer.Option("auto", help="auto, cpu or cuda[:N]."),
        threads: int = typer.Option(1, help="torch threads for inference."),
        max_message_mb: float = typer.Option(32.0, help="Largest accepted message (MiB)."),
        idle_timeout: float = typer.Option(300.0, help="Close a connection idle for this many seconds."),
        monitor: Path | None = typer.Option(None, "--monitor", help="Failure-monitor calibration JSON (vla monitor "
                                            "calibrate): each reply carries the score and alarm."),
    ) -> None:
        """Serve a policy over websocket + msgpack (openpi client wire format)."""
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            from vla.serve.server import PolicyServer, check_bind

            key = read_api_key(api_key_file)
            check_bind(host, key)  # before anything heavy is imported or loaded
            import torch

            from vla.serve.policy_service import load_policy_service

            calibration = None
            if monitor is not None:
                from vla.serve.monitor import MonitorCalibration

                calibration = MonitorCalibration.load(monitor)
            torch.set_num_threads(max(1, threads))
            predict, spec, meta = load_policy_service(policy, resolve_device(device))
            safety_cfg = None
            if safety:
                from vla.serve.safety_options import resolve_safety

                safety_cfg = resolve_safety(safety, meta)
            pol = getattr(predict, "__self__", None)  # the Policy whose predict_chunk is served
            server = PolicyServer(predict, meta, spec, host=host, port=port, api_key=key, safety=safety_cfg,
                                  max_message_bytes=int(max_message_mb * 1024 * 1024), idle_timeout_s=idle_timeout,
                                  monitor=calibration,
                                  features=(lambda: pol.last_features) if pol is not None else None,
                                  resample=pol.resample_last if pol is not None else None)
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"serving {meta['policy']['name']} on ws://{host}:{port} (health: http://{host}:{port}/healthz)"
                   f"{'; API key required' if key else ''}{safety_label(safety_cfg)}"
                   f"{'; monitor: ' + str(monitor) if calibration is not None else ''}")
        try:
            server.serve_forever()
        except OSError as exc:
            typer.secho(f"error: cannot listen on {host}:{port}: {exc.strerror}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
        except KeyboardInterrupt:
            pass
