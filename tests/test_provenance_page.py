"""The provenance page: built from real AiiDA nodes, opened in real headless Chromium, clicked."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import calcfunction, workfunction
from headless_chromium import chromium

from agi_data.report.provenance_page import build_page, collect


@calcfunction
def scale(x: orm.Float, factor: orm.Float) -> orm.Float:
    return orm.Float(x.value * factor.value)


@pytest.fixture
def small_graph(aiida_profile):
    x = orm.Float(2.0).store()
    y = scale(x, orm.Float(3.0))
    z = scale(y, orm.Float(0.5))
    return x, y, z


def test_collect_follows_inputs_and_outputs(small_graph):
    x, y, z = small_graph
    nodes, links = collect([y])
    # y's creator, its inputs (x, factor) and, forward, the second calculation and z
    assert {x.pk, y.pk, z.pk} <= set(nodes)
    labels = {lbl for *_, lbl, _t in links}
    assert {"x", "factor", "result"} <= labels


def test_collect_does_not_wander_through_a_shared_input(aiida_profile):
    # a pseudopotential or parameters node shared by many calculations must not pull them all in
    shared = orm.Float(10.0).store()
    a = scale(orm.Float(1.0), shared)
    b = scale(orm.Float(2.0), shared)
    nodes, _ = collect([a])
    assert {a.pk, a.creator.pk, shared.pk} <= set(nodes)
    assert b.pk not in nodes and b.creator.pk not in nodes
    nodes, _ = collect([shared])  # unless the shared node is itself a root
    assert {a.creator.pk, b.creator.pk} <= set(nodes)


def test_page_in_headless_chromium_shows_attributes_on_click(small_graph, tmp_path):
    from selenium.webdriver.common.by import By

    x, y, z = small_graph
    page = build_page([z], tmp_path / "prov.html", title="test graph",
                      store_runs=[{"run_id": "r1", "provenance_uuid": z.creator.uuid, "version": "SNAP"}])
    with chromium(tmp_path / "chrome") as driver:
        driver.get(page.as_uri())
        driver.find_element(By.ID, "fit").click()
        graph_nodes = driver.find_elements(By.CSS_SELECTOR, "g.node")
        assert len(graph_nodes) >= 7  # 2 calcs, 5 data nodes, the store run
        assert driver.find_element(By.ID, "details").text == ""
        driver.find_element(By.ID, f"n{y.pk}").click()
        assert driver.find_element(By.ID, "node-title").text.startswith(f"Float [{y.pk}]")
        assert '"value": 6\n' in driver.find_element(By.ID, "node-attributes").text
        driver.find_element(By.ID, "run_r1").click()
        assert "SNAP" in driver.find_element(By.ID, "node-attributes").text
        assert f"[{z.creator.pk}]" in driver.find_element(By.ID, "details").text  # written_by link


@workfunction
def repeat(x: orm.Float) -> orm.Float:
    """Five sibling calculations, as a reference set's pw.x runs are."""
    y = x
    for i in range(5):
        y = scale(y, orm.Float(1.0 + i))
    return y


def _in_view(driver, key):
    """Whether the graph node ``key`` is drawn inside the visible graph area."""
    return driver.execute_script(
        "const g = document.getElementById(arguments[0]).getBoundingClientRect();"
        "const b = document.getElementById('graph').getBoundingClientRect();"
        "return g.width > 0 && g.left >= b.left - 1 && g.right <= b.right + 1 && g.top >= b.top - 1"
        " && g.bottom <= b.bottom + 1;", key)


def test_repeated_processes_collapse_and_the_page_opens_on_its_run(aiida_profile, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    out = repeat(orm.Float(2.0))
    wf = out.creator.caller if out.creator.caller is not None else out.creator
    calcs = [n for n in wf.called]
    assert len(calcs) == 5
    runs = [{"run_id": "r1", "provenance_uuid": wf.uuid, "version": "SNAP", "created": "2026-12-01T10:00:00"}]
    runs += [{"run_id": f"other{i}", "version": "V"} for i in range(12)]  # a wide graph: the run is not in view by luck
    page = build_page([wf], tmp_path / "prov.html", title="groups", store_runs=runs, focus="r1")
    text = page.read_text()
    assert "scale ×5" in text
    with chromium(tmp_path / "chrome") as driver:
        driver.set_window_size(900, 700)
        driver.get(page.as_uri())
        drawn = {g.get_attribute("id") for g in driver.find_elements(By.CSS_SELECTOR, "svg g.node")}
        assert not any(f"n{c.pk}" in drawn for c in calcs)  # collapsed ...
        group = next(k for k in drawn if k.startswith("g"))
        assert _in_view(driver, "run_r1")  # ... and the page opens on its run
        driver.find_element(By.ID, "run_r1").click()
        assert driver.find_element(By.ID, "node-created").text == "2026-12-01T10:00:00"
        assert "SNAP" in driver.find_element(By.ID, "node-uuid").text
        # the group expands in the panel: each member a link to its own details
        driver.find_element(By.ID, group).click()
        assert driver.find_element(By.ID, "node-title").text.startswith("scale ×5")
        driver.find_element(By.XPATH, f"//a[@data-key='n{calcs[2].pk}']").click()
        assert driver.find_element(By.ID, "node-title").text == f"scale [{calcs[2].pk}]"
        assert calcs[2].uuid == driver.find_element(By.ID, "node-uuid").text
        # fit shows everything; a search finds a node by its pk, centres on it and shows it
        driver.find_element(By.ID, "fit").click()
        box = driver.find_element(By.ID, "search")
        box.send_keys("repeat")
        assert driver.find_element(By.ID, "node-title").text == f"repeat [{wf.pk}]"
        assert _in_view(driver, f"n{wf.pk}") and f"n{wf.pk}" in _selected_ids(driver)
        assert driver.find_element(By.ID, "search-result").text.split()[1] in ("match", "matches")
        # by pk: a collapsed member is found, its group shown in view
        box.clear()
        box.send_keys(str(calcs[4].pk))
        assert driver.find_element(By.ID, "node-title").text == f"scale [{calcs[4].pk}]"
        assert _in_view(driver, group) and group in _selected_ids(driver)
        box.clear()
        box.send_keys("scale")  # six matches (five calculations and their group): Enter steps through them
        first = driver.find_element(By.ID, "node-title").text
        box.send_keys(Keys.ENTER)
        second = driver.find_element(By.ID, "node-title").text
        assert first.startswith("scale") and second.startswith("scale") and first != second
        # zoom changes the view box; the run button comes back to the run
        view_box = "return document.querySelector('#graph svg').getAttribute('viewBox');"
        before = driver.execute_script(view_box)
        driver.find_element(By.ID, "zoom-in").click()
        after = driver.execute_script(view_box)
        assert before and after and float(after.split()[2]) == pytest.approx(0.8 * float(before.split()[2]))
        driver.find_element(By.ID, "home").click()
        assert _in_view(driver, "run_r1")


def _selected_ids(driver):
    from selenium.webdriver.common.by import By

    return [g.get_attribute("id") for g in driver.find_elements(By.CSS_SELECTOR, "g.node.selected")]
