"""The cost model (make cost) on the templates the deployment is made of: the default
stays within the design's $15 a month for the serving layer at 1 million API requests;
a resource type the model does not know fails; the levers are where the model says."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from devtools import cost


@pytest.fixture(scope="module")
def templates(packaged):
    return {
        "stateful": cost.load_yaml_template(cost.ROOT / "infra" / "stateful.yaml"),
        "web": cost.load_yaml_template(cost.ROOT / "infra" / "web.yaml"),
        **{s: json.loads(packaged(s).template_path.read_text()) for s in cost.SERVICES},
    }


def test_the_default_serving_layer_costs_at_most_15_dollars_at_a_million_requests(templates):
    traffic = cost.Traffic()
    assert traffic.total_requests() == 1_000_000
    result = cost.bill(traffic, templates)
    assert result.total("serving") <= 15.0, cost.render("default", result, traffic, 0)
    kinds = {x.what.split(" (")[0] for x in result.lines}
    assert not any("NAT" in k for k in kinds)  # no NAT gateway by default
    assert any(x.what.startswith("ElastiCache Serverless for Valkey") for x in result.lines)
    # RDS is the batch layer's, as the design counts it; and it is priced.
    assert 10 < result.total("batch") < 20


def test_every_resource_is_priced_or_named_free(templates):
    result = cost.bill(cost.Traffic(), templates)
    created = sum(len(cost.created(t, None)) for t in templates.values())
    priced = {x.resource for x in result.lines if x.resource != "config"}
    # A function yields several lines, a template resource at least one or a "free" entry.
    assert len(result.free) + len({r.split(":")[-1] + r.split(":")[0] for r in priced}) >= created - 2
    assert all(x.monthly >= 0 for x in result.lines)


def test_a_resource_type_the_model_does_not_know_fails(templates):
    strange = json.loads(json.dumps(templates["web"]))
    strange["Resources"]["Thing"] = {"Type": "AWS::EC2::Instance", "Properties": {"InstanceType": "t4g.nano"}}
    with pytest.raises(cost.UnknownResource, match="AWS::EC2::Instance"):
        cost.bill(cost.Traffic(), {**templates, "web": strange})
    endpoint = json.loads(json.dumps(templates["stateful"]))
    endpoint["Resources"]["SsmEndpoint"] = {
        "Type": "AWS::EC2::VPCEndpoint",
        "Properties": {"VpcEndpointType": "Interface"},
    }
    with pytest.raises(cost.UnknownResource, match="interface VPC endpoint"):
        cost.bill(cost.Traffic(), {**templates, "stateful": endpoint})


def test_the_nat_gateway_is_a_parameter_and_priced_with_its_address(templates):
    default = cost.bill(cost.Traffic(), templates).total("serving")
    with_nat = cost.bill(cost.Traffic(), templates, {"NatGateway": "true"}).total("serving")
    assert with_nat - default == pytest.approx(730 * 0.045 + 0.045 + 730 * 0.005, abs=0.01)  # $36.50 and its traffic


def test_each_million_requests_costs_what_api_gateway_lambda_and_the_edge_add(templates):
    traffic = cost.Traffic()
    extra = cost.per_million(traffic, templates)
    assert 3.5 < extra < 7  # API Gateway's $3.50 is most of it
    design = replace(traffic, requests={**traffic.requests, "quote": 25_000_000})
    assert cost.bill(design, templates).total("serving") > 100  # said plainly in the README
    cached = replace(design, edge_share=0.5)
    assert cost.bill(cached, templates).total("serving") < cost.bill(design, templates).total("serving") - 40


def test_the_schedules_are_counted_from_their_expressions():
    assert cost.schedule_runs("cron(0/15 13-21 ? * MON-FRI *)") == pytest.approx(4 * 9 * 21.75)
    assert cost.schedule_runs("cron(30 22 ? * MON-FRI *)") == pytest.approx(21.75)
    assert cost.schedule_runs("rate(1 hour)") == pytest.approx(30.42 * 24)
