"""The dashboard as a person uses it, in headless Chromium: log in, see the jobs, open one,
read its timeline and results, download them, look at a vendor, and watch a running job
move without reloading. Each page is saved as a screenshot."""

from __future__ import annotations

import json
import re
import time

from playwright.async_api import expect

from enrichwatch.actions import resume
from enrichwatch.models import JobState, VendorName
from enrichwatch.notify.message import build_message
from enrichwatch.store.notifications import Outcome
from reconciler import check_job_now, reconcile_once
from tests.dashboard.conftest import (
    World,
    log_in,
    open_world,
    reconcile_until,
    screenshot,
    submit,
    watched_page,
)
from tests.settling import settle


async def test_a_wrong_token_is_refused_and_the_right_one_lets_in(world, page, artifacts):
    _, _, url, _ = world
    await page.goto(f"{url}/")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await screenshot(page, artifacts, "login")

    await page.get_by_label("API token").fill("not-the-token")
    await page.get_by_role("button", name="Log in").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("That is not the API token")
    await expect(page.get_by_label("API token")).to_have_attribute("aria-invalid", "true")
    await screenshot(page, artifacts, "login-refused")

    await log_in(page, url)
    await expect(page.get_by_role("heading", name="Jobs", level=1)).to_be_visible()
    cookies = await page.context.cookies()
    (cookie,) = [c for c in cookies if c["name"] == "enrichwatch_token"]
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert await page.evaluate("document.cookie") == ""  # out of reach of page scripts

    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(f"{url}/login")
    await page.goto(f"{url}/")
    await expect(page).to_have_url(re.compile(r"/login\?next="))


async def test_jobs_job_page_results_and_vendor_page(world, page, artifacts):
    sim, services, url, rc = world
    sim.set_callbacks("crustdata", loss_probability=1.0)  # its callback never comes
    lost = await submit(services, url, VendorName.CRUSTDATA)
    called_back = await submit(services, url, VendorName.BRIGHTLOCAL)
    await settle(sim, services, rc)
    lost = await services.store.get_job(lost.id)
    assert lost.state is JobState.COMPLETED
    assert lost.results_state == "stored"

    await log_in(page, url)
    jobs = page.get_by_role("table", name="Latest jobs, newest first")
    for job in (lost, called_back):
        row = jobs.get_by_role("row").filter(has=page.get_by_role("link", name=f"Job {job.id}"))
        await expect(row.get_by_text("completed")).to_be_visible()
        await expect(
            page.get_by_role("progressbar", name=f"Progress of job {job.id}")
        ).to_be_visible()
    await screenshot(page, artifacts, "jobs")

    await page.get_by_role("link", name=f"Job {lost.id}", exact=True).click()
    await expect(page).to_have_url(f"{url}/jobs/{lost.id}")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Job {lost.id}: crustdata sample"
    )
    timeline = page.get_by_role("table", name="Every event of this job, oldest first")
    for event in ("submit.requested", "job.state_changed", "webhook.late", "results.stored"):
        await expect(timeline.get_by_role("rowheader", name=event).first).to_be_visible()
    stored = await services.store.list_events(lost.id)
    await expect(timeline.locator("tbody tr")).to_have_count(len(stored))
    preview = page.get_by_role("table", name=re.compile(r"^First \d+ results$"))
    first_rows = await services.store.results(lost.id, limit=10)
    await expect(preview.locator("tbody tr")).to_have_count(len(first_rows))
    await expect(preview.get_by_role("rowheader").first).to_have_text(
        str(first_rows[0]["position"])
    )
    calls = page.locator("[data-vendor-calls]")
    await expect(calls).to_have_text(re.sub(r"\.?0+$", "", f"{lost.vendor_calls:.2f}"))
    await screenshot(page, artifacts, "job")

    async with page.expect_download() as info:
        await page.get_by_role("link", name="CSV").click()
    download = await info.value
    assert download.suggested_filename == f"job-{lost.id}.csv"
    lines = (await download.path()).read_text().splitlines()
    assert lines[0].startswith("position,input_id,status")
    assert len(lines) == 1 + lost.results_count

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Crustdata").click()
    await expect(page.get_by_role("heading", name="Crustdata", level=1)).to_be_visible()
    for name in ("Job duration", "Vendor calls per job"):
        chart = page.get_by_role("img", name=re.compile(name))
        await expect(chart).to_be_visible()
        await expect(chart.locator("circle")).to_have_count(1)
        await expect(chart).to_have_accessible_name(re.compile(rf"^{name}.* 1 job, finished "))
    never = page.get_by_role("table", name="Jobs without a callback, latest first")
    await expect(never.get_by_role("link", name=f"Job {lost.id}")).to_be_visible()
    # It was late too, but a callback that never came is listed once, as never.
    late = page.get_by_role("region", name="Callbacks that came late")
    await expect(late.get_by_text("None.")).to_be_visible()
    await expect(page.get_by_text("0 late, 1 never came")).to_be_visible()
    await screenshot(page, artifacts, "vendor")

    await page.goto(f"{url}/vendors/brightlocal")
    await expect(page.get_by_text("0 late, 0 never came")).to_be_visible()


async def test_a_running_jobs_progress_changes_without_a_reload(world, page, artifacts):
    sim, services, url, rc = world
    job = await submit(services, url, VendorName.INFLUENCERS_CLUB)
    await reconcile_once(rc)
    await sim.advance(20)
    first = await check_job_now(rc, job.id)
    assert first.state is JobState.RUNNING
    assert 0 < first.progress_done < first.progress_total

    await log_in(page, url)
    bar = page.get_by_role("progressbar", name=f"Progress of job {job.id}")
    await expect(bar).to_have_attribute("value", str(first.progress_done))
    await expect(bar).to_have_attribute("max", str(first.progress_total))
    await page.evaluate("window.notReloaded = true")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    await sim.advance(15)
    second = await check_job_now(rc, job.id)
    assert first.progress_done < second.progress_done
    await expect(bar).to_have_attribute("value", str(second.progress_done))
    row = page.get_by_role("row").filter(has=bar)
    await expect(
        row.get_by_role(
            "cell", name=re.sub(r"\.?0+$", "", f"{second.vendor_calls:.2f}"), exact=True
        )
    ).to_be_visible()
    await screenshot(page, artifacts, "jobs-live")

    await page.get_by_role("link", name=f"Job {job.id}", exact=True).click()
    await expect(page).to_have_url(f"{url}/jobs/{job.id}")
    await page.evaluate("window.notReloaded = true")
    navigations.clear()
    await settle(sim, services, rc)
    done = await services.store.get_job(job.id)
    assert done.state is JobState.COMPLETED
    await expect(page.locator(".job-live .state")).to_have_text("completed")
    await expect(bar).to_have_attribute("value", str(done.progress_done))
    await expect(page.get_by_role("link", name="JSON lines")).to_be_visible()
    timeline = page.get_by_role("table", name="Every event of this job, oldest first")
    await expect(timeline.get_by_role("rowheader", name="results.stored")).to_be_visible()
    assert await page.evaluate("window.notReloaded") is True
    assert navigations == []
    await screenshot(page, artifacts, "job-live")


async def test_pages_fit_a_phone_screen(world, browser, artifacts):
    sim, services, url, rc = world
    job = await submit(services, url, VendorName.BRIGHTLOCAL)
    await settle(sim, services, rc)
    phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
    async with watched_page(browser, **phone) as page:
        await log_in(page, url)
        for path, name in (
            ("/", "jobs"),
            (f"/jobs/{job.id}", "job"),
            ("/vendors/brightlocal", "vendor"),
        ):
            await page.goto(f"{url}{path}")
            await expect(page.get_by_role("main")).to_be_visible()
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, (path, overflow)
            if name != "vendor":  # the job's progress is whole on screen, not scrolled away
                bar = page.get_by_role("progressbar", name=f"Progress of job {job.id}")
                box = await bar.bounding_box()
                assert box is not None
                assert box["x"] >= 0, path
                assert box["x"] + box["width"] <= 390, path
            await screenshot(page, artifacts, f"phone-{name}")


HOUR = 3600.0


async def paused_ecore_job(world: World):
    """An eCore job paused by the vendor partway, found paused with its results so far."""
    job = await submit(world.services, world.url, VendorName.ECORE)
    await world.sim.advance(20)  # running at the vendor by now
    await world.services.adapter(VendorName.ECORE).pause(job.vendor_job_id or "")

    async def paused_with_partial_results() -> bool:
        found = await world.services.store.get_job(job.id)
        return found.state is JobState.NEEDS_ACTION and found.results_state == "stored"

    await reconcile_until(world, paused_with_partial_results)
    return await world.services.store.get_job(job.id)


async def test_a_bar_shows_only_what_the_vendor_counted(tmp_path, browser, artifacts):
    """Without counts there is nothing to draw: a bar with no value is drawn by the browser
    as a part of one, which read as a fifth done beside "no counts yet". A job that expired
    stopped moving, so its last counts are no bar either; one completed is done, counted or
    not."""
    async with open_world(tmp_path / "bars.db", max_job_age=HOUR) as world:
        sim, services, url, rc = world
        done = await submit(services, url, VendorName.ECORE)  # eCore gives no counts
        sim.config.influencers_club.profile.base_seconds = 5 * HOUR  # outlives the maximum age
        gone = await submit(services, url, VendorName.INFLUENCERS_CLUB)
        await settle(sim, services, rc)
        done, gone = [await services.store.get_job(job.id) for job in (done, gone)]
        assert (done.state, done.progress_total) == (JobState.COMPLETED, None)
        assert gone.state is JobState.EXPIRED
        assert gone.progress_total
        assert gone.progress_done is not None
        assert 0 < gone.progress_done < gone.progress_total
        paused = await paused_ecore_job(world)
        assert paused.results_count > 0
        fresh = await submit(services, url, VendorName.INFLUENCERS_CLUB)  # not yet checked

        async with watched_page(browser, viewport={"width": 1280, "height": 900}) as page:
            await log_in(page, url)
            jobs = page.get_by_role("table", name="Latest jobs, newest first")

            def row(job):
                link = page.get_by_role("link", name=f"Job {job.id}", exact=True)
                return jobs.get_by_role("row").filter(has=link)

            for job in (fresh, paused):
                await expect(row(job).get_by_text("no counts yet")).to_be_visible()
                await expect(row(job).get_by_role("progressbar")).to_have_count(0)
            await expect(row(gone).get_by_role("progressbar")).to_have_count(0)
            await expect(
                row(gone).get_by_text(
                    f"{gone.progress_done} / {gone.progress_total} when last checked"
                )
            ).to_be_visible()
            bar = row(done).get_by_role("progressbar", name=f"Progress of job {done.id}")
            await expect(bar).to_have_attribute("value", "1")
            await expect(bar).to_have_attribute("max", "1")
            await expect(row(done).get_by_text("done", exact=True)).to_be_visible()
            await screenshot(page, artifacts, "jobs-without-counts")

            await page.goto(f"{url}/jobs/{paused.id}")
            status = page.get_by_role("region", name="Status")
            await expect(status.get_by_text("no counts yet")).to_be_visible()
            await expect(status.get_by_role("progressbar")).to_have_count(0)


async def test_a_paused_job_says_what_to_do_and_by_when(world, page, artifacts):
    """The time it paused alone left the person to guess what to do, and how long they had:
    the page says both as the notice of the pause does, and stops once the job is resumed."""
    _, services, url, rc = world
    job = await paused_ecore_job(world)
    assert job.paused_at is not None
    deadline = time.strftime(
        "%Y-%m-%d %H:%M UTC", time.gmtime(job.paused_at + services.settings.max_job_age)
    )
    notice = build_message(
        job,
        Outcome.NEEDS_ACTION,
        base_url=url,
        at=job.paused_at,
        detail=None,
        trouble=None,
        max_job_age=services.settings.max_job_age,
    )
    assert notice.problem is not None

    await log_in(page, url)
    await page.goto(f"{url}/jobs/{job.id}")
    action = page.locator("[data-action]")
    await expect(action).to_have_text(notice.problem.replace("`", ""))
    await expect(action).to_contain_text(f"POST {url}/api/jobs/{job.id}/resume")
    await expect(action).to_contain_text(f"Not resumed by {deadline}, it expires.")
    await expect(action.locator("code")).to_have_text(f"enrichwatch resume {job.id}")
    await screenshot(page, artifacts, "job-paused")

    await resume(services, job.id)
    await check_job_now(rc, job.id)
    await expect(page.locator(".job-live .state")).to_have_text("running")
    await expect(action).to_have_count(0)


async def test_an_expired_job_says_how_to_watch_it_again(tmp_path, browser):
    """Expired is enrichwatch giving up, not the vendor: the page says how to ask again,
    in the words of the expiry notice."""
    async with open_world(tmp_path / "expired.db", max_job_age=HOUR) as world:
        sim, services, url, rc = world
        sim.config.influencers_club.profile.base_seconds = 5 * HOUR  # outlives the maximum age
        job = await submit(services, url, VendorName.INFLUENCERS_CLUB)
        await settle(sim, services, rc)
        gone = await services.store.get_job(job.id)
        assert gone.state is JobState.EXPIRED
        notice = build_message(
            gone,
            Outcome.EXPIRED,
            base_url=url,
            at=sim.clock.now(),
            detail=None,
            trouble=None,
            max_job_age=HOUR,
        )
        assert notice.problem is not None
        page = await browser.new_page()
        try:
            await log_in(page, url)
            await page.goto(f"{url}/jobs/{job.id}")
            action = page.locator("[data-action]")
            await expect(action).to_contain_text(
                notice.problem.replace("`", "").removeprefix("Error: older than the maximum age. ")
            )
            await expect(action.locator("code")).to_have_text(f"enrichwatch check {job.id}")
        finally:
            await page.close()


async def test_the_results_preview_never_heads_two_columns_alike(world, page):
    """Reprompt's data has a `status` of its own beside the record's: both headed `status`,
    nobody could tell which was which."""
    sim, services, url, rc = world
    job = await submit(services, url, VendorName.REPROMPT)
    await settle(sim, services, rc)
    first = await services.store.results(job.id, limit=1)
    assert first[0]["status"]
    assert "status" in json.loads(first[0]["data"])

    await log_in(page, url)
    await page.goto(f"{url}/jobs/{job.id}")
    preview = page.get_by_role("table", name=re.compile(r"^First \d+ results$"))
    headers = await preview.get_by_role("columnheader").all_inner_texts()
    assert len(headers) == len(set(headers)), headers
    assert headers[:2] == ["#", "status"]
    assert "data.status" in headers
    column = headers.index("data.status")
    cell = preview.locator("tbody tr").first.locator("th, td").nth(column)
    await expect(cell).to_have_text(json.loads(first[0]["data"])["status"])


async def test_a_charts_labels_stay_inside_it(world, page, artifacts):
    """The last time on the x axis was centred on the plot's right edge, so its end ran
    past the picture and was cut ("02:35 U")."""
    sim, services, url, rc = world
    for _ in range(2):
        await submit(services, url, VendorName.CRUSTDATA)
        await settle(sim, services, rc)
        await sim.advance(HOUR)

    await log_in(page, url)
    await page.goto(f"{url}/vendors/crustdata")
    for name in ("Job duration", "Vendor calls per job"):
        chart = page.get_by_role("img", name=re.compile(name))
        await expect(chart.locator("circle")).to_have_count(2)
        labels = await chart.evaluate(
            """svg => {
                const frame = svg.getBoundingClientRect();
                return [...svg.querySelectorAll("text")].map(text => {
                    const box = text.getBoundingClientRect();
                    return {text: text.textContent, inside: box.left >= frame.left
                        && box.right <= frame.right && box.top >= frame.top
                        && box.bottom <= frame.bottom};
                });
            }"""
        )
        assert [label for label in labels if not label["inside"]] == [], name
        assert sum(label["text"].endswith(" UTC") for label in labels) == 2
    await screenshot(page, artifacts, "vendor-two-jobs")


async def test_a_wrong_address_is_the_dashboards_page_not_json(world, browser, artifacts):
    """A mistyped address, or a link written with a slash too many, is what a person meets
    in the address bar: it showed raw JSON, where a job that is not there got the page."""
    _, services, url, _ = world
    job = await submit(services, url, VendorName.BRIGHTLOCAL)
    missing = frozenset({f"{url}/nope", f"{url}/static/missing.css"})
    async with watched_page(browser, not_found=missing) as page:
        answer = await page.goto(f"{url}/nope")
        assert answer is not None
        assert answer.status == 404
        await expect(page.get_by_role("heading", name="Not shown", level=1)).to_be_visible()
        alert = page.get_by_role("alert")
        await expect(alert).to_have_text("There is no page at /nope.")
        await expect(page.get_by_role("button", name="Log out")).to_have_count(0)
        # Styled: the page's own style sheet applies (the alert's border is from it).
        await expect(alert).to_have_css("border-left-style", "solid")

        await log_in(page, url)
        await page.goto(f"{url}/jobs/{job.id}/")
        await expect(page).to_have_url(f"{url}/jobs/{job.id}")
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            f"Job {job.id}: brightlocal sample"
        )
        answer = await page.goto(f"{url}/static/missing.css")
        assert answer is not None
        assert answer.status == 404
        await expect(alert).to_have_text("There is no page at /static/missing.css.")
        await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        await screenshot(page, artifacts, "not-found")
