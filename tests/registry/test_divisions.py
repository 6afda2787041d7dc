from __future__ import annotations

from tests.conftest import Stack


async def test_divisions_list_shanghais_16_districts_and_their_towns(stack: Stack) -> None:
    response = await stack.client.get("/v1/divisions")
    assert response.status_code == 200
    districts = response.json()
    assert len(districts) == 16
    towns = [t for d in districts for t in d["towns"]]
    legal = [t for t in towns if t["town_type"] != "other"]
    assert len(towns) == 235 and len(legal) == 216
    central = [d for d in districts if d["is_central_city"]]
    assert {d["name"] for d in central} == {
        "黄浦区",
        "徐汇区",
        "长宁区",
        "静安区",
        "普陀区",
        "虹口区",
        "杨浦区",
    }
    assert sum(1 for d in central for t in d["towns"] if t["town_type"] == "street") == 72
    pudong = next(d for d in districts if d["code"] == "310115")
    assert pudong["name"] == "浦东新区" and not pudong["is_central_city"]
