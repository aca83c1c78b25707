"""What the CLI prints about jobs. The links name where the service listens: a `serve --port`
given on its command line, or a port 0 it picked, is nowhere in another process's settings,
so the receiver records its URL in the database they share, and the vendor is given a
callback URL that reaches it. A callback URL is shown only where a vendor can use one, and
tracking a job twice says so."""

from __future__ import annotations

import json
import re

from enrichwatch.models import VendorName
from tests.cli.conftest import World


async def test_the_cli_prints_and_submits_the_callback_url_of_the_service_on_its_database(
    world: World, tmp_path
):
    assert not world.url.endswith(":8080")
    job = world.jobs[VendorName.CRUSTDATA]
    token = job.callback_token

    code, out, err = await world.cli("show", str(job.id), "--json")
    assert code == 0, err
    assert json.loads(out)["callback_url"] == f"{world.url}/hooks/crustdata/{token}"
    code, out, err = await world.cli("jobs", "--json")
    assert code == 0, err
    assert {shown["callback_url"].rsplit("/hooks/", 1)[0] for shown in json.loads(out)} == {
        world.url
    }

    people = tmp_path / "people.csv"
    people.write_text("professional_network_profile_urls\nhttps://www.linkedin.com/in/p1/\n")
    code, out, err = await world.cli("submit", "crustdata", str(people), "--json")
    assert code == 0, err
    (submitted,) = json.loads(out)
    assert submitted["callback_url"].startswith(f"{world.url}/hooks/crustdata/")
    sent = world.sim.crustdata.jobs[submitted["vendor_job_id"]]
    assert sent.webhook_url == submitted["callback_url"]


async def test_a_configured_public_url_wins(world: World):
    job = world.jobs[VendorName.ECORE]
    world.env = world.env | {"ENRICHWATCH_PUBLIC_URL": "https://hooks.example.com/"}
    code, out, err = await world.cli("show", str(job.id), "--json")
    assert code == 0, err
    assert json.loads(out)["callback_url"].startswith("https://hooks.example.com/hooks/ecore/")


async def test_notification_links_name_the_bound_port_not_port_0(world: World):
    assert world.services.settings.port == 8080
    assert await world.services.public_url() == world.url


async def test_a_callback_url_is_shown_only_for_vendors_that_send_callbacks(world: World):
    code, out, err = await world.cli("track", "crustdata", "b-77")
    assert code == 0, err
    assert (
        out.splitlines()[1]
        == f"  callback URL: {world.url}/hooks/crustdata/" + (out.splitlines()[1].rsplit("/", 1)[1])
    )
    code, out, err = await world.cli("track", "ecore", "e-77")
    assert code == 0, err
    assert len(out.splitlines()) == 1
    assert "callback" not in out
    ecore = world.jobs[VendorName.ECORE]
    code, out, err = await world.cli("show", str(ecore.id))
    assert code == 0, err
    assert re.search(r"Callback URL +- \(the vendor sends no callbacks\)", out)


async def test_tracking_a_tracked_job_again_says_so(world: World):
    code, out, err = await world.cli("track", "ecore", "e-78", "--name", "first")
    assert (code, err) == (0, "")
    job_id = out.split()[1]
    code, out, err = await world.cli("track", "ecore", "e-78", "--name", "second")
    assert code == 0, err
    assert out.startswith(f"job {job_id}  ecore  e-78  submitted  first")
    assert err.strip() == f"Note: already tracked as job {job_id}; it is left as it was"


async def test_a_stored_name_with_control_characters_is_printed_escaped_on_its_line(
    world: World,
):
    """Such names were taken before the CLI refused them (and the API may take them): printed
    as they are, a line break split the job's row and an escape sequence coloured the
    terminal. They are printed escaped; the JSON keeps the name as it was given."""
    name = "line1\nline2\x1b[31mred"
    job, _ = await world.services.store.track_job(VendorName.ECORE, "e-ctl", name)
    escaped = "line1\\nline2\\x1b[31mred"

    listed = await world.cli("jobs")
    shown = await world.cli("show", str(job.id))
    tracked = await world.cli("track", "ecore", "e-ctl")

    for result in (listed, shown, tracked):
        assert result.code == 0, result.err
        assert "\x1b" not in result.out
    (row,) = [line for line in listed.out.splitlines()[2:] if line.split()[0] == str(job.id)]
    assert row.split("│")[2].strip() == escaped
    assert shown.out.splitlines()[0].split() == ["Job", str(job.id), escaped]
    assert tracked.out.splitlines()[0] == f"job {job.id}  ecore  e-ctl  submitted  {escaped}"
    result = await world.cli("show", str(job.id), "--json")
    assert json.loads(result.out)["name"] == name
