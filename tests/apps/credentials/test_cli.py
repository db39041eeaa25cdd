"""`pilotchain credential` as a user runs it against a chain's gateway (in-process, certified):
issuer init, issue a class from CSV, present three claims as a QR code, read the QR image back
with an independent decoder (zxing-cpp), verify offline from a snapshot and genesis and online,
revoke, and see the report turn to ✗."""

from __future__ import annotations

import csv
import json
import struct
import zlib
from pathlib import Path

import pytest
import zxingcpp
from typer.testing import CliRunner

from pilotchain.cli.main import app
from tests.apps.credentials.helpers import World, roll, world

ISS = "https://registrar.cli.example"


def read_qr_png(path: Path) -> str:
    """The text of the QR code in a PNG as segno writes it (1-bit greyscale), decoded by zxing-cpp."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, size = 8, b"", (0, 0)
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind, chunk = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert (depth, colour) == (1, 0), "segno writes 1-bit greyscale"
            size = (width, height)
        elif kind == b"IDAT":
            idat += chunk
    width, height = size
    raw, stride = zlib.decompress(idat), (width + 7) // 8 + 1
    pixels, previous = bytearray(), bytes(stride - 1)
    for row in range(height):
        kind, line = raw[row * stride], bytearray(raw[row * stride + 1:(row + 1) * stride])
        for i in range(len(line)):  # PNG filters with 1 byte per pixel group (bit depth 1)
            left, up, corner = (line[i - 1] if i else 0), previous[i], (previous[i - 1] if i else 0)
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                nearest = min((abs(estimate - left), 0, left), (abs(estimate - up), 1, up),
                              (abs(estimate - corner), 2, corner))[2]
                line[i] = (line[i] + nearest) & 0xFF
        previous = bytes(line)
        pixels += bytes(255 if line[x // 8] >> (7 - x % 8) & 1 else 0 for x in range(width))
    image = bytes(pixels)  # kept alive while zxing reads it: ImageView holds no reference to the buffer
    found = zxingcpp.read_barcodes(zxingcpp.ImageView(image, width, height, zxingcpp.ImageFormat.Lum))
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode
    return str(found[0].text)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, str, Path]:
    with world(tmp_path_factory.mktemp("credentials-cli")) as w:
        yield w, w.chain.serve_http(), w.chain.consortium.directory


def test_the_story_from_the_command_line(served: tuple[World, str, Path], tmp_path: Path) -> None:
    w, url, net = served
    runner = CliRunner()
    node = ["--node", url, "--network", str(net)]
    admin = ["-i", str(net / "orgs" / w.university / "admin.id")]
    registrar = ["-i", str(net / "orgs" / w.university / "client.id")]
    employer = ["-i", str(net / "orgs" / w.other / "client.id")]

    def run(*args: str, code: int = 0, stdin: str | None = None) -> str:
        result = runner.invoke(app, ["credential", *args], input=stdin)
        assert result.exit_code == code, result.output
        return result.output

    home = tmp_path / "registrar"
    assert "registered" in run("issuer", "init", str(home), "--iss", ISS, "--name", "City University CLI",
                               "--list-size", "1024", *node, *admin)
    roll_csv = tmp_path / "class.csv"
    graduates = roll(20)
    with open(roll_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(graduates[0]))
        writer.writeheader()
        writer.writerows(graduates)
    out = tmp_path / "diplomas"
    summary = json.loads(run("issue", str(home), "--class", str(roll_csv), "--batch", "cli-2026", "--out", str(out),
                             "--json", *node, *registrar))
    assert summary["diplomas"] == 20 and len(list(out.glob("*.diploma.json"))) == 20
    student = graduates[4]["student_id"]
    diploma = out / f"{student}.diploma.json"
    shown = json.loads(run("show", str(diploma), "--json"))
    assert shown["claims"]["student_id"] == student and shown["iss"] == ISS

    run("present", str(diploma), "--disclose", "name,degree,year", "--out", str(tmp_path / "p.json"),
        "--qr", str(tmp_path / "p.png"), "--qr-text", str(tmp_path / "p.txt"))
    scanned = read_qr_png(tmp_path / "p.png")
    assert scanned == (tmp_path / "p.txt").read_text().strip() and scanned.startswith("PC1:")
    assert graduates[4]["birthdate"] not in (tmp_path / "p.json").read_text()

    snapshot = tmp_path / "snapshot.bin"
    run("snapshot", "--for", str(tmp_path / "p.json"), "--out", str(snapshot), *node, *employer)
    genesis = ["--genesis", str(net / "genesis.json")]
    offline = run("verify", "-", "--snapshot", str(snapshot), *genesis, stdin=scanned)
    assert "VERIFIED" in offline and "✗" not in offline
    for name in ("credential", "chain", "issuer", "signature", "disclosures", "batch", "issuer key", "status",
                 "freshness"):
        assert f"✓ {name}" in offline
    assert f"given_name: {graduates[4]['given_name']}" in offline and "birthdate" not in offline

    assert "revoked the diploma" in run("revoke", str(home), "--student", student, *node, *registrar)
    stale = json.loads(run("verify", str(tmp_path / "p.json"), "--snapshot", str(snapshot), *genesis, "--json"))
    assert stale["verified"] is True  # the old snapshot predates the revocation
    online = run("verify", str(tmp_path / "p.txt"), "--online", "--save-snapshot", str(tmp_path / "fresh.bin"),
                 *node, *employer, code=1)
    assert "✗ status" in online and "REVOKED" in online and "NOT VERIFIED (status)" in online
    again = json.loads(run("verify", str(tmp_path / "p.json"), "--snapshot", str(tmp_path / "fresh.bin"), *genesis,
                           "--json", code=1))
    assert [c["name"] for c in again["checks"] if not c["ok"]] == ["status"]

    other = out / f"{graduates[5]['student_id']}.diploma.json"
    assert "VERIFIED" in run("verify", str(other), "--snapshot", str(tmp_path / "fresh.bin"), *genesis)
    rotated = run("key", "rotate", str(home), *node, *admin)
    assert "key k2 registered; key k1 retired" in rotated
    after_rotation = run("verify", str(other), "--online", *node, *employer)
    assert "VERIFIED" in after_rotation


def test_usage_errors_say_what_to_do(served: tuple[World, str, Path], tmp_path: Path) -> None:
    w, url, net = served
    runner = CliRunner()
    (tmp_path / "junk.json").write_text('{"format": "something else"}')
    result = runner.invoke(app, ["credential", "verify", str(tmp_path / "junk.json"), "--snapshot", "x",
                                 "--genesis", str(net / "genesis.json")])
    assert result.exit_code == 2 and "cannot read the snapshot" in result.output
    result = runner.invoke(app, ["credential", "verify", str(tmp_path / "junk.json"), "--genesis",
                                 str(net / "genesis.json")])
    assert result.exit_code == 2 and "--snapshot FILE, or online with --online" in result.output
    (tmp_path / "empty.bin").write_bytes(b"\x00")
    result = runner.invoke(app, ["credential", "verify", str(tmp_path / "junk.json"), "--snapshot",
                                 str(tmp_path / "empty.bin"), "--genesis", str(net / "genesis.json")])
    assert result.exit_code == 1 and "✗ chain" in result.output and "does NOT verify" in result.output
    result = runner.invoke(app, ["credential", "present", str(tmp_path / "junk.json"), "--disclose", "name"])
    assert result.exit_code == 2 and "not a credential" in result.output
    result = runner.invoke(app, ["credential", "snapshot", "--out", str(tmp_path / "s"), "--node", url])
    assert result.exit_code == 2 and "--issuer, --batch or --for" in result.output
