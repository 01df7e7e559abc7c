"""`vla inspect FILE`: what an MCAP file holds (any MCAP, robot data or not).

Profile and library, and per channel: topic, schema name and encoding, message encoding, message
count, first/last log time and mean rate; metadata records and attachments. Uses the summary section
when the file has one; otherwise (or with ``scan=True``) counts by reading every record without
decoding payloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla.data.formats.episode import ConversionError


def inspect_mcap(path: str | Path, scan: bool = False, decode: bool = False) -> dict[str, Any]:
    """Summary of an MCAP file as a JSON-able dict. ``decode=True`` also decodes every message (cdr,
    protobuf, json) and adds per topic ``decoded`` (count) and ``sample`` (first message, shortened).

    A damaged file (any record, index or metadata) raises one ConversionError naming it."""
    from vla.errors import VlaError

    try:
        return _inspect(Path(path), scan, decode)
    except VlaError:
        raise
    except Exception as e:  # mcap's own errors, struct/unicode errors on damaged records
        raise ConversionError(f"{path}: not a readable MCAP file ({type(e).__name__}: {e})") from e


def _inspect(path: Path, scan: bool, decode: bool) -> dict[str, Any]:
    from mcap.reader import make_reader

    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    with open(path, "rb") as f:
        try:
            reader = make_reader(f)
            header = reader.get_header()
            summary = None if scan else reader.get_summary()
        except Exception as e:  # mcap's own error types
            raise ConversionError(f"{path}: not a readable MCAP file ({type(e).__name__}: {e})") from e
        channels: dict[int, dict[str, Any]] = {}
        if summary is not None and summary.statistics is not None:
            stats = summary.statistics
            for cid, ch in summary.channels.items():
                channels[cid] = _channel(ch, summary.schemas.get(ch.schema_id))
                channels[cid]["messages"] = int(stats.channel_message_counts.get(cid, 0))
            # per-channel time ranges are not in the statistics: read message times (payloads untouched)
            _times(reader, channels, path, count=False)
            metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
            attachments = [{"name": a.name, "media_type": a.media_type, "size": a.data_size}
                           for a in summary.attachment_indexes]
        else:
            _times(reader, channels, path, count=True)
            metadata, attachments = {}, []
        if decode:
            _decode_all(reader, channels, path)
    topics = []
    for ch in sorted(channels.values(), key=lambda c: c["topic"]):
        start, end, n = ch.pop("_start"), ch.pop("_end"), ch["messages"]
        ch["start_ns"], ch["end_ns"] = start, end
        ch["duration_s"] = (end - start) / 1e9 if start is not None and end is not None else None
        ch["rate_hz"] = round((n - 1) / ch["duration_s"], 3) if n > 1 and ch["duration_s"] else None
        topics.append(ch)
    starts = [t["start_ns"] for t in topics if t["start_ns"] is not None]
    ends = [t["end_ns"] for t in topics if t["end_ns"] is not None]
    return {
        "path": str(path),
        "profile": header.profile,
        "library": header.library,
        "messages": sum(t["messages"] for t in topics),
        "start_ns": min(starts) if starts else None,
        "end_ns": max(ends) if ends else None,
        "duration_s": (max(ends) - min(starts)) / 1e9 if starts else None,
        "topics": topics,
        "metadata": metadata,
        "attachments": attachments,
    }


def _channel(ch: Any, schema: Any) -> dict[str, Any]:
    return {"topic": ch.topic, "schema": schema.name if schema else None,
            "schema_encoding": schema.encoding if schema else None, "message_encoding": ch.message_encoding,
            "messages": 0, "_start": None, "_end": None}


def _times(reader: Any, channels: dict[int, dict[str, Any]], path: Path, count: bool) -> None:
    try:
        for schema, ch, msg in reader.iter_messages(log_time_order=False):
            c = channels.get(ch.id)
            if c is None:
                c = channels[ch.id] = _channel(ch, schema)
            if count:
                c["messages"] += 1
            t = msg.log_time
            c["_start"] = t if c["_start"] is None else min(c["_start"], t)
            c["_end"] = t if c["_end"] is None else max(c["_end"], t)
    except Exception as e:  # truncated chunks etc.
        raise ConversionError(f"{path}: cannot read messages ({type(e).__name__}: {e}); the file may be "
                              "truncated or corrupted") from e


def _decode_all(reader: Any, channels: dict[int, dict[str, Any]], path: Path) -> None:
    from vla.data.formats.mcap import Decoders

    decoders = Decoders(path)
    for c in channels.values():
        c["decoded"] = 0
    try:
        for schema, ch, msg in reader.iter_messages(log_time_order=True):
            value = decoders(schema, ch, msg)
            c = channels[ch.id]
            c["decoded"] += 1
            if "sample" not in c:
                c["sample"] = repr(value)[:300]
    except ConversionError:
        raise
    except Exception as e:
        raise ConversionError(f"{path}: cannot read messages ({type(e).__name__}: {e})") from e


def format_inspection(info: dict[str, Any]) -> str:
    """Human-readable table of `inspect_mcap`'s result."""
    lines = [f"{info['path']}  profile={info['profile'] or '-'}  library={info['library'] or '-'}",
             f"messages: {info['messages']}  duration: {info['duration_s'] or 0:.3f} s", ""]
    rows = [("topic", "schema", "encoding", "messages", "rate Hz", "start (s)", "end (s)")]
    t0 = info["start_ns"] or 0
    for t in info["topics"]:
        rows.append((t["topic"], t["schema"] or "-", f"{t['message_encoding']}/{t['schema_encoding'] or '-'}",
                     str(t["messages"]), "-" if t["rate_hz"] is None else f"{t['rate_hz']:g}",
                     "-" if t["start_ns"] is None else f"{(t['start_ns'] - t0) / 1e9:.3f}",
                     "-" if t["end_ns"] is None else f"{(t['end_ns'] - t0) / 1e9:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    for t in info["topics"]:
        if "sample" in t:
            lines.append(f"{t['topic']}: decoded {t['decoded']}; first: {t['sample'][:120]}")
    for name, md in info["metadata"].items():
        lines.append(f"metadata {name}: {md}")
    for a in info["attachments"]:
        lines.append(f"attachment {a['name']} ({a['media_type']}, {a['size']} bytes)")
    return "\n".join(lines)
