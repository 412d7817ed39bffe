"""The provenance page: built from real AiiDA nodes, opened in real headless Chromium, clicked."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import calcfunction
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
        graph_nodes = driver.find_elements(By.CSS_SELECTOR, "g.node")
        assert len(graph_nodes) >= 7  # 2 calcs, 5 data nodes, the store run
        assert driver.find_element(By.ID, "details").text == ""
        driver.find_element(By.ID, f"n{y.pk}").click()
        assert driver.find_element(By.ID, "node-title").text.startswith(f"Float [{y.pk}]")
        assert '"value": 6\n' in driver.find_element(By.ID, "node-attributes").text
        driver.find_element(By.ID, "run_r1").click()
        assert "SNAP" in driver.find_element(By.ID, "node-attributes").text
        assert f"[{z.creator.pk}]" in driver.find_element(By.ID, "details").text  # written_by link
