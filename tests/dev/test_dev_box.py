"""The development box as an integrator uses it: webhooks received and verified at
/dev/webhooks, each email's HTML part in a sandboxed frame at /dev/mail, the database URL in the
banner for the commands, and one `dev` per data directory."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.dev.pgcluster import free_port


@dataclass
class DevProcess:
    process: subprocess.Popen[bytes]
    base: str
    log: Path
    data_dir: Path

    @property
    def output(self) -> str:
        return self.log.read_text()


def wait_until(predicate: Callable[[], bool], what: str, attempts: int = 600) -> None:
    for _ in range(attempts):
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("CONSENT_")}


def start_dev(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "dev",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            env=environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def dev() -> Iterator[DevProcess]:
    directory = Path(tempfile.mkdtemp(prefix="consent-devbox-test-"))
    directory.chmod(0o755)  # its private cluster runs as the postgres user when we are root
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = directory / "dev.log"
    process = start_dev(directory / "data", port, log)
    try:
        wait_until(lambda: answers(f"{base}/readyz") or process.poll() is not None, "dev")
        assert process.poll() is None, log.read_text()
        wait_until(lambda: "Staff JWT:" in log.read_text(), "the banner")
        yield DevProcess(process, base, log, directory / "data")
    finally:
        stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def banner_value(dev: DevProcess, label: str) -> str:
    found = re.search(rf"{label}:\s+(\S+)", dev.output)
    assert found, dev.output
    return found.group(1)


def open_request(dev: DevProcess, subject: str) -> str:
    created = httpx.post(
        f"{dev.base}/v1/consent-requests",
        headers={"Authorization": f"Bearer {banner_value(dev, 'API key')}"},
        json={
            "subject_id": subject,
            "birth_date": "2016-01-01",
            "country": "SI",
            "guardian_email": f"{subject}@example.com",
            "purposes": ["tutoring"],
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    request_id: str = created.json()["id"]
    return request_id


def test_a_delivered_webhook_is_listed_with_its_verified_signature(dev: DevProcess) -> None:
    open_request(dev, "hook-child")
    erased = httpx.delete(
        f"{dev.base}/v1/subjects/hook-child",
        headers={"Authorization": f"Bearer {banner_value(dev, 'Staff JWT')}"},
        timeout=10,
    )
    assert erased.status_code == 200, erased.text

    def listed() -> bool:
        return "subject.erased" in httpx.get(f"{dev.base}/dev/webhooks", timeout=5).text

    wait_until(listed, "the subject.erased webhook at /dev/webhooks")
    page = httpx.get(f"{dev.base}/dev/webhooks", timeout=5).text
    assert "signature verified" in page
    assert "signature NOT verified" not in page
    assert "hook-child" in page, "the payload is shown"
    assert f"Webhooks:  {dev.base}/dev/webhooks" in dev.output


def test_a_forged_webhook_is_listed_as_not_verified(dev: DevProcess) -> None:
    forged = httpx.post(
        f"{dev.base}/dev/webhooks",
        json={"type": "consent.forged", "data": {}},
        headers={
            "webhook-id": "msg_forged",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl",
        },
        timeout=5,
    )
    assert forged.status_code == 204
    page = httpx.get(f"{dev.base}/dev/webhooks", timeout=5).text
    article = page[page.index("consent.forged") :]
    assert "signature NOT verified" in article.split("</article>")[0]


def test_the_mailbox_shows_the_html_part_in_a_sandboxed_frame(dev: DevProcess) -> None:
    request_id = open_request(dev, "mail-child")

    def arrived() -> bool:
        return request_id in httpx.get(f"{dev.base}/dev/mail", timeout=5).text

    wait_until(arrived, "the guardian email grouped under its request at /dev/mail")
    page = httpx.get(f"{dev.base}/dev/mail", timeout=5).text
    assert f"Consent request {request_id} (subject mail-child)" in page
    group = page[page.index(f"Consent request {request_id}") :].split("</section>")[0]
    frame = re.search(r'<iframe sandbox="" src="(/dev/mail/\d+/html)"', group)
    assert frame, group
    assert "allow-scripts" not in group

    html_part = httpx.get(f"{dev.base}{frame.group(1)}", timeout=5)
    assert html_part.status_code == 200
    assert html_part.headers["content-type"].startswith("text/html")
    policy = html_part.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert "sandbox" in policy
    assert "/guardian/" in html_part.text, "the HTML part holds the guardian's link"
    assert httpx.get(f"{dev.base}/dev/mail/999999/html", timeout=5).status_code == 404


def test_the_banner_gives_the_command_line_for_another_shell(dev: DevProcess) -> None:
    line = re.search(
        r"^\s+(CONSENT_DATABASE_URL=(\S+) consent-service outbox list)$", dev.output, re.M
    )
    assert line, dev.output
    assert f"Database:  {line.group(2)}" in dev.output
    console = Path(sys.executable).with_name("consent-service")
    listed = subprocess.run(
        [str(console), "outbox", "list", "--status", "sent"],
        env={**environment(), "CONSENT_DATABASE_URL": line.group(2)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].startswith("ID  KIND  TOPIC")


def test_a_second_dev_on_the_same_data_directory_refuses_and_leaves_the_first_running(
    dev: DevProcess,
) -> None:
    data_dir = dev.data_dir
    log = data_dir.parent / "second.log"
    second = start_dev(data_dir, free_port(), log)
    try:
        code = second.wait(timeout=60)
    finally:
        stop(second)

    assert code != 0
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "another consent-service dev" in lines[0]
    assert str(data_dir) in lines[0]
    assert "Traceback" not in log.read_text()
    assert dev.process.poll() is None
    assert httpx.get(f"{dev.base}/readyz", timeout=5).status_code == 200
    assert answers(f"{dev.base}/dev/mail")
