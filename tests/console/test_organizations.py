"""Organizations in the console: a member of two switches between them and sees each one's own
projects; a member of another organization sees nothing of ``default``, even by its ids."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.processes import run_promenade
from tests.support.browser import ConsoleServer, Pages


def test_the_switcher_shows_each_organizations_own_projects(
    page_for: Pages, console: ConsoleServer
) -> None:
    output = run_promenade(
        ["bootstrap", "--email", "two-orgs@console.test", "--org", "harbour"], console.data_dir
    )
    token = output.strip().splitlines()[-1]
    console.graphql(
        """mutation($org: ID!) { addMember(input: {organizationId: $org,
            email: "two-orgs@console.test", name: "Two", role: VIEWER}) { __typename } }""",
        {"org": console.organization_id},
    )
    page = page_for(token)
    page.goto(f"{console.url}/#/{console.organization}/projects")
    expect(page.get_by_role("link", name="shop")).to_be_visible()
    switcher = page.get_by_label("Organization")
    expect(switcher).to_have_value(console.organization)
    switcher.select_option("harbour")
    expect(page).to_have_url(f"{console.url}/#/harbour/projects")
    expect(page.get_by_text("No projects yet.")).to_be_visible()
    assert page.get_by_role("link", name="shop").count() == 0
    # A VIEWER sees the pipeline but gets no buttons that change it.
    switcher.select_option(console.organization)
    page.get_by_role("link", name="shop").click()
    expect(page.locator('li.card[data-environment="Production"]')).to_be_visible()
    assert page.get_by_role("button", name="Configure").count() == 0
    assert page.get_by_role("button", name="Deploy a build").count() == 0

    # A link naming the organization where they are ADMIN, with this project's id: the page
    # goes to the project's own organization, where they are a VIEWER, and offers no more.
    page.goto(f"{console.url}/#/harbour/projects/{console.project_id}")
    expect(page).to_have_url(
        f"{console.url}/#/{console.organization}/projects/{console.project_id}"
    )
    expect(page.locator('li.card[data-environment="Production"]')).to_be_visible()
    assert page.get_by_role("button", name="Configure").count() == 0
    expect(page.locator(".role")).to_have_text(" · viewer")


def test_another_organizations_member_sees_nothing_of_it(
    page_for: Pages, console: ConsoleServer
) -> None:
    output = run_promenade(
        ["bootstrap", "--email", "intruder@console.test", "--org", "intruders"],
        console.data_dir,
    )
    page = page_for(output.strip().splitlines()[-1])
    page.goto(f"{console.url}/#/{console.organization}/projects/{console.project_id}")
    expect(page.get_by_role("alert")).to_have_text("You are not a member of that organization.")
    page.goto(f"{console.url}/#/intruders/projects/{console.project_id}")
    expect(page.get_by_role("alert")).to_have_text(
        "This project does not exist, or you may not see it."
    )
    page.goto(f"{console.url}/#/{console.organization}/audit")
    expect(page.get_by_role("alert")).to_be_visible()
    assert "shop" not in page.content() and "Greeter" not in page.content()
    recorded = page_for.recorded(page)
    assert not [body for body in recorded.responses if console.project_id in body]
