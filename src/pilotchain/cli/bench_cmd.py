"""`pilotchain bench ...`: benchmarks that print numbers and record them under bench/results/.

``pilotchain bench [--nodes 4] [--mode stress|spike|stability] [--crypto intl|gm] [--json]`` runs the
network benchmark in the CAICT method (``pilotchain.bench.network``); ``pilotchain bench micro``
the micro benchmarks (crypto, storage, ledger); ``pilotchain bench report`` the CAICT-style report
from the recorded results (``pilotchain.bench.report``). Installed applications add workloads as further
sub-commands (``pilotchain bench exchange``) through the ``pilotchain.bench_workloads`` entry-point
group: the platform finds them at run time and never imports an application by name.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Benchmarks: print the numbers and record them under bench/results/. "
                  "Without a subcommand: the network benchmark (CAICT method).")


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def _table(title: str, results: dict[str, Any]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    flat: dict[str, Any] = {}
    _flat("", results, flat)
    for key, value in flat.items():
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        table.add_row(key, shown)
    return table


@app.command()
def micro(
    seconds: float = typer.Option(1.0, help="wall time per crypto case"),
    blocks: int = typer.Option(5, help="blocks of 1,000 transactions for the ledger benchmark"),
    only: str = typer.Option("crypto,storage,ledger,contracts", help="comma list of: crypto, storage, ledger, contracts"),
    json_output: bool = typer.Option(False, "--json", help="print one JSON document instead of tables"),
    record: bool = typer.Option(True, help="write the result file under bench/results/"),
) -> None:
    """Crypto (sign/verify per core, batch on all cores), storage (commit, state commitment,
    proofs) and ledger (check, execute, build and commit blocks of signed kv transactions)."""
    from pilotchain.bench import results as bench_results

    wanted = {part.strip() for part in only.split(",") if part.strip()}
    unknown = wanted - {"crypto", "storage", "ledger", "contracts"}
    if unknown:
        raise typer.BadParameter(f"unknown part(s): {', '.join(sorted(unknown))}; use crypto, storage, ledger, contracts")
    console = Console(stderr=json_output)
    document: dict[str, Any] = {}
    with console.status("benchmarking…") as status:
        if "crypto" in wanted:
            from pilotchain.bench import crypto

            status.update("crypto: sign, verify, batch verify, hash, AEAD for intl and gm…")
            document["crypto"] = crypto.run(seconds_per_case=seconds)
        if "storage" in wanted:
            from pilotchain.bench import storage

            status.update("storage: block commits, state commitment, proofs…")
            document["storage"] = storage.run()
        if "ledger" in wanted:
            from pilotchain.bench import ledger_micro as ledger

            document["ledger"] = {}
            for suite in ("intl", "gm"):
                status.update(f"ledger ({suite}): check, execute, build and commit blocks…")
                document["ledger"][suite] = ledger.run(suite, blocks=blocks)
        if "contracts" in wanted:
            from pilotchain.contracts import bench as contracts_bench

            status.update("contracts: sandboxed Python transfer calls and metered loops…")
            document["contracts"] = contracts_bench.run()
    if record:
        path = bench_results.record("micro", document)
        console.print(f"recorded {path}")
    if json_output:
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
        return
    for section, results in document.items():
        console.print(_table(section, results))


@app.callback(invoke_without_command=True)
def network(
    ctx: typer.Context,
    workload: str = typer.Option("kv", help="kv (signed key-value writes: this benchmark) or an installed "
                                 "application's workload, e.g. payments or exchange — the same as "
                                 "`pilotchain bench payments`; options both take are passed on"),
    nodes: int = typer.Option(4, help="validators, each its own OS process on this machine"),
    mode: str = typer.Option("stress", help="stress | spike | stability"),
    crypto: str = typer.Option("intl", help="intl | gm"),
    duration: float = typer.Option(1800.0, help="stability: seconds of load at 20 percent of the stress rate (judged for drift after a warm-up of 20 percent)"),
    rate: float = typer.Option(0.0, help="spike/stability: the stress rate in tx/s (0: run the stress ladder first)"),
    step: float = typer.Option(10.0, help="stress: seconds per offered rate"),
    rate_start: float = typer.Option(0.0, help="stress: first offered rate in tx/s (0: 250 for intl, 50 for gm, times 4/n above 4 nodes)"),
    rate_factor: float = typer.Option(1.4, help="stress: each step offers this many times the last"),
    steps_max: int = typer.Option(12, help="stress: at most this many steps"),
    deadline: float = typer.Option(10.0, help="a transaction succeeds when committed within this many seconds"),
    p99_max: float = typer.Option(2.0, help="stress: a step keeps up only with p99 latency within this many seconds (0: no bound)"),
    batch: int = typer.Option(250, help="transactions per POST /v1/txs/batch"),
    block_txs_max: int = typer.Option(0, help="chain parameter block_txs_max of the benchmarked network (0: default)"),
    orgs: int = typer.Option(4, help="organisations (1..7)"),
    clients_per_org: int = typer.Option(4, help="client identities per organisation (signing keys)"),
    spike_s: float = typer.Option(5.0, help="spike: seconds per burst"),
    spikes: int = typer.Option(2, help="spike: number of bursts"),
    catchup: float = typer.Option(10.0, help="seconds of load while one node is down (0: skip catch-up)"),
    query: float = typer.Option(3.0, help="seconds per query-throughput case (0: skip)"),
    query_concurrency: int = typer.Option(32, help="concurrent readers"),
    ceiling: float = typer.Option(2.0, help="seconds to measure the signature-verification ceiling"),
    profile: float = typer.Option(0.0, help="py-spy one node during the main phase, for at most this many seconds"),
    profile_node: int = typer.Option(0, help="which node --profile samples (0: the first, whose gateway also streams the events the benchmark times)"),
    workdir: Path = typer.Option(None, help="network folder (default: a temporary one, deleted)"),
    keep: bool = typer.Option(False, help="keep the temporary network folder"),
    reuse: Path = typer.Option(None, help="run on the network an earlier run left in this folder (--workdir): restart its nodes on their ledgers, e.g. to measure a long chain"),
    json_output: bool = typer.Option(False, "--json", help="print one JSON document instead of tables"),
    record: bool = typer.Option(True, help="write the result file (and chart) under bench/results/"),
) -> None:
    """Network benchmark in the CAICT method: a real n-node network on this machine, pre-signed
    transactions from many client identities, offered through the gateways in batches."""
    if ctx.invoked_subcommand is not None:
        if workload != "kv":
            raise typer.BadParameter(f"name the workload once: --workload {workload} or the sub-command "
                                     f"{ctx.invoked_subcommand!r}", param_hint="--workload")
        return
    if workload != "kv":
        _run_workload(ctx, workload)
        return
    from pilotchain.bench import network as bench_network
    from pilotchain.bench import results as bench_results
    from pilotchain.bench.chart import write_html

    options = bench_network.BenchOptions(
        nodes=nodes, mode=mode, suite=crypto, orgs=orgs, clients_per_org=clients_per_org, batch_size=batch,
        step_s=step, rate_start=rate_start, rate_factor=rate_factor, steps_max=steps_max,
        rate=rate or None, duration_s=duration, spike_s=spike_s, spike_count=spikes, deadline_s=deadline, latency_p99_max_s=p99_max, block_txs_max=block_txs_max,
        catchup_s=catchup, query_s=query, query_concurrency=query_concurrency, ceiling_s=ceiling,
        profile_s=profile, profile_node=profile_node, workdir=workdir, keep_workdir=keep, reuse=reuse,
    )
    try:
        options.check()
        if reuse is not None:
            bench_network.reused_manifest(reuse, options)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console = Console(stderr=True)
    profile_raw = Path(tempfile.mkstemp(prefix="pilotchain-bench-profile-", suffix=".txt")[1]) if profile > 0 else None
    if profile_raw is not None:
        options = dataclasses.replace(options, profile_output=profile_raw)
    document = bench_network.run(options, log=lambda message: console.print(message, highlight=False))
    if record:
        kind = f"network-{mode}-{crypto}-{nodes}n"
        path = bench_results.record(kind, document)
        chart = write_html(document, path.with_suffix(".html"),
                           f"pilotchain bench --mode {mode} --nodes {nodes} --crypto {crypto} ({path.stem})")
        document["result_file"] = str(path)
        document["chart_file"] = str(chart)
        if profile_raw is not None and profile_raw.stat().st_size > 0:
            raw_copy = path.with_suffix(".pyspy.txt")
            shutil.move(str(profile_raw), raw_copy)
            document["profile_file"] = str(raw_copy)
        console.print(f"recorded {path}\nchart    {chart}")
    if profile_raw is not None:
        profile_raw.unlink(missing_ok=True)
    if json_output:
        typer.echo(json.dumps(document, sort_keys=True))
        return
    Console().print(*network_tables(document))


#: sub-commands that are the platform's own benchmarks, not workloads
_PLATFORM_COMMANDS = frozenset({"micro", "compare", "report"})


def _run_workload(ctx: typer.Context, workload: str) -> None:
    """``--workload NAME``: run the installed workload's command, handing on the options given on
    the command line that it takes too (``--nodes``, ``--crypto``, ``--json``…), refusing the others."""
    group = ctx.command
    names = sorted(name for name in group.list_commands(ctx)  # type: ignore[attr-defined]
                   if name not in _PLATFORM_COMMANDS)
    command = group.get_command(ctx, workload) if workload in names else None  # type: ignore[attr-defined]
    if command is None:
        raise typer.BadParameter(f"no workload {workload!r}; installed: kv, {', '.join(names) or '(none)'}",
                                 param_hint="--workload")
    if getattr(command, "callback", None) is None and hasattr(command, "list_commands"):
        # a Typer app whose one command is the workload (the installed ones are apps whose callback is)
        inner = command.list_commands(ctx)
        if len(inner) != 1:
            raise typer.BadParameter(f"workload {workload!r} has several commands; run `pilotchain bench "
                                     f"{workload} --help`", param_hint="--workload")
        command = command.get_command(ctx, inner[0])
    params = {param.name: param for param in command.params}
    handed: dict[str, Any] = {}
    for name, value in ctx.params.items():
        source = ctx.get_parameter_source(name)  # Typer's own copy of Click's enum: compared by name
        if name == "workload" or source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            continue
        if name not in params:
            flag = "--" + name.replace("_", "-") if name != "json_output" else "--json"
            raise typer.BadParameter(f"{flag} does not apply to the {workload} workload; see "
                                     f"`pilotchain bench {workload} --help`", param_hint="--workload")
        handed[name] = value
    with command.make_context(workload, [], parent=ctx) as sub:  # the workload's defaults
        for name, value in handed.items():  # through the workload's own checks (ranges, choices)
            sub.params[name] = params[name].process_value(sub, value)
        command.invoke(sub)


def _ms(latency: dict[str, Any]) -> str:
    return " / ".join("–" if latency.get(k) is None else f"{latency[k]:,.0f}" for k in ("p50", "p95", "p99"))


def network_tables(document: dict[str, Any]) -> list[Table]:
    """Human tables of a network benchmark document."""
    config, summary = document["config"], document["summary"]
    tables = []
    head = Table(title=f"pilotchain bench: {config['mode']}, {config['nodes']} nodes, {config['suite']}",
                 title_justify="left")
    head.add_column("measure")
    head.add_column("value", justify="right")
    deployment, ceiling = document["deployment"], document["ceiling"]
    rows = [
        ("committed tx/s", f"{summary['committed_tps']:,.1f}"),
        ("received tx/s", f"{summary['received_tps']:,.1f}"),
        ("success (within deadline)", f"{summary['success_rate']:.1%}"),
        ("latency p50 / p95 / p99 ms", _ms(summary["latency_ms"])),
        ("verify ceiling /s (all cores)", f"{ceiling['verify_per_second']:,.0f} ({ceiling['signature']})"),
        ("efficiency = committed × n ÷ ceiling", f"{summary['efficiency']:.1%}" if summary["efficiency"] else "–"),
        ("init → first block s", f"{deployment['first_block_s']:.2f}") if not deployment.get("reused") else
        ("reused network: restarted at height", f"{deployment['height_at_start']:,} in {deployment['restart_s']:.1f} s"),
    ]
    floor = summary.get("floor")
    if floor:
        rows.insert(4, ("floor (≥ {:,.0f} tx/s, ≥ {:.0%}, p99 ≤ {:,.0f} ms)".format(
            floor["committed_tps_min"], floor["success_min"], floor["p99_ms_max"]), "met" if floor["met"] else "NOT met"))
    if "ledger" in document and document["ledger"]["bytes_per_tx"]:
        rows.append(("ledger bytes per tx", f"{document['ledger']['bytes_per_tx']:,.0f}"))
    query = document.get("query", {})
    if "kv_get_query" in query:
        rows.append(("queries/s (kv.get)", f"{query['kv_get_query']['per_second']:,.0f}"))
        rows.append(("state reads/s (with proof)", f"{query['state_read_with_proof']['per_second']:,.0f}"))
    catchup = document.get("catchup")
    if catchup and catchup.get("reached_head"):
        rows.append(("catch-up blocks/s, tx/s", f"{catchup['blocks_per_s']:,.1f}, {catchup['txs_per_s']:,.0f} "
                     f"({catchup['blocks_behind']} blocks, {catchup['restart_to_head_s']:.1f} s from restart)"))
    if "spike" in document:
        spike = document["spike"]
        rows.append(("spike: burst success", f"{spike['burst_success_rate']:.1%} at {spike['burst_tps']:,.0f} tx/s"))
        rows.append(("spike: recovery s (max)", f"{spike['recovery_s_max']:.2f}"))
    if "stability" in document:
        stability = document["stability"]
        rows.append(("stability", _stability_verdict(stability)))
        rows.append(("stability: p50 slope ms/min", str(stability["latency_p50_slope_ms_per_min"])))
        rows.append(("stability: RSS slope MiB/min", ", ".join(
            f"{v}" for v in stability["rss_slope_mb_per_min"].values())))
        rows.append(("stability: anonymous RSS slope MiB/min", ", ".join(
            f"{v}" for v in stability["rss_anon_slope_mb_per_min"].values())))
    rows.append(("event-stream drops (backfilled txs)",
                 f"{document['event_stream']['drops']} ({document['event_stream']['backfilled_txs']})"))
    for key, value in rows:
        head.add_row(key, value)
    tables.append(head)
    if "stress" in document:
        steps = Table(title="stress ladder", title_justify="left")
        for column in ("offered tx/s", "received tx/s", "committed tx/s", "success", "p50/p95/p99 ms", "keeps up"):
            steps.add_column(column, justify="right")
        for step in document["stress"]["steps"]:
            steps.add_row(f"{step['offered_tps']:,.0f}", f"{step['received_tps']:,.0f}",
                          f"{step['committed_tps']:,.0f}", f"{step['success_rate']:.1%}",
                          _ms(step["latency_ms"]), "yes" if step["passed"] else "no")
        tables.append(steps)
    resources = Table(title="nodes during the main phase", title_justify="left")
    for column in ("node", "CPU % mean", "CPU % max", "peak RSS MiB", "data bytes"):
        resources.add_column(column, justify="right")
    for name, numbers in document["resources"]["nodes"].items():
        resources.add_row(name, str(numbers["cpu_percent_mean"]), str(numbers["cpu_percent_max"]),
                          str(numbers["rss_mb_peak"]), f"{numbers['data_dir_bytes']:,}")
    generator = document["resources"]["generator"]
    resources.add_row("load generator", str(generator["cpu_percent_mean"]), "", str(generator["rss_mb_peak"]), "")
    tables.append(resources)
    return tables


@app.command()
def compare(
    plenum_peer: Path = typer.Option(Path("../shared/peers/plenum"), envvar="PLENUM_PEER",
                                     help="the Plenum peer folder (run.sh)"),
    plenum_duration: int = typer.Option(30, help="run.sh DURATION (s)"),
    plenum_window: int = typer.Option(500, help="run.sh WINDOW (outstanding requests)"),
    bench_args: str = typer.Option("", help="extra options for `pilotchain bench --mode stress --json`"),
    json_output: bool = typer.Option(False, "--json", help="print one JSON document"),
    record: bool = typer.Option(True, help="write the comparison under bench/results/"),
) -> None:
    """`pilotchain bench --mode stress --json`, then the Plenum peer's `run.sh 30 500`, back to back;
    prints both and the ratio (a failing Plenum run is recorded with exactly why)."""
    from pilotchain.bench import results as bench_results
    from pilotchain.bench.compare import compare as run_compare

    console = Console(stderr=True)
    console.print("pilotchain bench --mode stress --json … then the Plenum peer (one after the other)")
    document = run_compare(plenum_peer.resolve(), pilotchain_arguments=bench_args.split(),
                           plenum_duration_s=plenum_duration, plenum_window=plenum_window)
    if record:
        path = bench_results.record("compare-plenum", document)
        console.print(f"recorded {path}")
    if json_output:
        typer.echo(json.dumps(document, sort_keys=True))
        return
    table = Table(title="pilotchain vs indy-plenum 1.13.1 on this machine", title_justify="left")
    table.add_column("")
    table.add_column("pilotchain", justify="right")
    table.add_column("plenum", justify="right")
    ours = document["pilotchain"].get("result", {}).get("summary")
    theirs = document["plenum"].get("result") if "error" not in document["plenum"] else None
    table.add_row("committed writes/s", f"{ours['committed_tps']:,.1f}" if ours else "failed",
                  f"{theirs['tps']:,.1f}" if theirs else "failed")
    table.add_row("latency p50 / p99 ms",
                  f"{ours['latency_ms']['p50']:,.0f} / {ours['latency_ms']['p99']:,.0f}" if ours else "–",
                  f"{theirs['lat_ms_p50']:,.0f} / {theirs['lat_ms_p99']:,.0f}" if theirs else "–")
    Console().print(table)
    if "side_by_side" in document:
        Console().print(f"ratio pilotchain ÷ plenum: {document['side_by_side']['throughput_ratio']:.2f}×")
    for side in ("pilotchain", "plenum"):
        if "error" in document[side]:
            Console().print(f"[red]{side} failed:[/red] {document[side]['error']}\n{document[side].get('stderr_tail', '')}")


@app.command()
def report(
    results: Path = typer.Option(None, "--results", help="folder of recorded result files (default: the "
                                 "repository's bench/results/)"),
    out: Path = typer.Option(Path("pilotchain-bench-report.html"), "--out",
                             help="the HTML report to write (the PDF goes beside it, .pdf)"),
    pdf: bool = typer.Option(None, "--pdf/--no-pdf", help="also print it to PDF with headless Chromium (default: "
                             "when --chromium is installed; --pdf fails without it)"),
    chromium: Path = typer.Option(Path("/usr/bin/chromium"), help="the Chromium that prints the PDF"),
    json_output: bool = typer.Option(False, "--json", help="print one JSON document: the files written, each "
                                     "shown run's headline figures, the missing runs and their commands"),
) -> None:
    """The CAICT-style performance report from recorded results (it measures nothing): stress,
    spike and stability at 4 and 16 nodes on both suites, and the applications' workloads —
    received/committed tx/s, success, latency, CPU, memory and disk per node, the verdicts and
    charts — as one self-contained HTML page (and a PDF), naming every required run that has no
    recorded result and the command that records it."""
    from pilotchain.bench import report as bench_report
    from pilotchain.bench import results as bench_results

    directory = results if results is not None else bench_results.results_dir()
    try:
        document = bench_report.build_report(directory, bench_report.installed_workloads())
    except bench_report.ReportError as exc:
        raise typer.BadParameter(str(exc), param_hint="--results") from exc
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(bench_report.render_html(document), encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {out}: {exc}", param_hint="--out") from exc
    pdf_path: Path | None = None
    pdf_note = ""
    if pdf is None and not chromium.exists():
        pdf_note = f"no PDF: {chromium} is not installed (Debian: apt-get install chromium); the HTML is the report"
    elif pdf is not False:
        try:
            pdf_path = bench_report.write_pdf(out, out.with_suffix(".pdf"), chromium)
        except bench_report.ReportError as exc:
            pdf_note = str(exc)
    if json_output:
        typer.echo(json.dumps(bench_report.report_json(document, html_path=out, pdf_path=pdf_path, pdf_note=pdf_note),
                              indent=2, sort_keys=True))
    else:
        typer.echo(f"report  {out}" + (f"\npdf     {pdf_path}" if pdf_path else ""))
        missing = document.missing
        typer.echo(f"{len(document.required) - len(missing)} of {len(document.required)} required runs recorded"
                   + ("; missing (record each with the command beside it):" if missing else ""))
        for run in missing:
            typer.echo(f"  {run.title:<32} {run.command}")
    if pdf_note:
        typer.echo(pdf_note, err=True)
        if pdf:
            raise typer.Exit(1)


def _stability_verdict(stability: dict[str, Any]) -> str:
    """One line: passed or not, and the two drift measures against their limits."""
    drift = stability["drift"]
    if drift["met"] is None:
        return f"NOT judged: {drift['why']}"
    latency = drift["latency"]
    growth = max(row["change_pct"] for row in drift["memory"]["nodes"].values())
    return (f"{'passed' if stability['passed'] else 'FAILED'}: p50 {latency['first_half_p50_ms']:,.0f} → "
            f"{latency['second_half_p50_ms']:,.0f} ms ({latency['change_pct']:+.1f} %, limit +{drift['latency_pct_max']:g} %), "
            f"memory peak {growth:+.1f} % (limit +{drift['memory_pct_max']:g} %), after {drift['warmup_s']:.0f} s warm-up"
            + (f"; the machine's verify ceiling moved {drift['machine_change_pct']:+.1f} % over the run"
               if drift.get("machine_change_pct") is not None else ""))


def _mount_workloads() -> None:
    """Workloads of the installed applications (entry-point group ``pilotchain.bench_workloads``: a
    Typer app or a command each), mounted by their entry-point name. One that fails to load is
    reported and left out; the platform's benchmarks keep working."""
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group="pilotchain.bench_workloads"), key=lambda e: e.name):
        try:
            workload = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken application must not break the benchmarks
            typer.echo(f"warning: the {entry.name!r} benchmark did not load ({exc})", err=True)
            continue
        if isinstance(workload, typer.Typer):
            app.add_typer(workload, name=entry.name)
        else:
            app.command(name=entry.name)(workload)


_mount_workloads()
