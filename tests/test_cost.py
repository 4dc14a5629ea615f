"""The cost model (make cost) on the templates the deployment is made of: the default
stays within the design's $15 a month for the serving layer at 1 million API requests;
a resource type the model does not know fails; the levers are where the model says."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from devtools.release import cost


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
    # Watching it is in that total: every alarm, the dashboard, each custom metric, the traces.
    whats = [x.what for x in result.lines]
    assert any(w.startswith("CloudWatch dashboard") for w in whats)
    assert sum(w.startswith("CloudWatch alarm") for w in whats) >= 30
    assert any(w.startswith("metric quote/QuotesHit") for w in whats)
    assert any("X-Ray" in w for w in whats) and any(w.startswith("vendor relay") for w in whats)
    assert 0 < result.observability() < 5
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
    assert all(x.monthly >= 0 for x in result.lines if not x.what.startswith("free tier"))


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
    assert cost.schedule_runs("cron(30 22 * * ? *)") == pytest.approx(30.42)
    assert cost.schedule_runs("rate(1 hour)") == pytest.approx(30.42 * 24)
    assert cost.schedule_runs("rate(15 minutes)") == pytest.approx(30.42 * 96)


def test_the_always_free_allowances_are_credits_no_larger_than_the_use(templates):
    traffic = cost.Traffic()
    counted = cost.bill(traffic, templates)
    none = cost.bill(replace(traffic, free_tier=False), templates)
    free_credits = [x for x in counted.lines if x.what.startswith("free tier")]
    assert free_credits and not [x for x in none.lines if x.what.startswith("free tier")]
    assert counted.total() == pytest.approx(none.total() + sum(x.monthly for x in free_credits))
    # A credit never exceeds what it covers: the dashboard's is its price, the metrics' at most theirs.
    dashboards = sum(x.monthly for x in free_credits if "dashboards" in x.what)
    assert dashboards == pytest.approx(-3.0)
    metrics = sum(x.monthly for x in none.lines if x.what.startswith("metric "))
    assert -metrics <= sum(x.monthly for x in free_credits if x.what == "free tier: CloudWatch metrics") < 0


def test_every_published_metric_is_priced_prorated_by_its_hours():
    from shared.observability import METRICS

    lines = cost.metric_lines()
    assert len(lines) == len(METRICS)
    [latency] = [x for x in lines if x.what.startswith("metric backtest/Latency")]
    assert latency.monthly == pytest.approx(3 * 0.30)  # three tiers, every hour
    [fired] = [x for x in lines if x.what == "metric alerts/RulesFired"]
    assert fired.monthly == pytest.approx(0.30 * 7 * 21.75 / 730)  # the market's hours only


def test_an_alarm_costs_each_metric_it_reads():
    def alarm(**props):
        return cost.price_resource("x", "A", {"Type": "AWS::CloudWatch::Alarm", "Properties": props}, cost.Traffic())

    [one] = alarm(MetricName="Errors", AlarmName="a")
    [math] = alarm(
        Metrics=[{"Id": "r", "MetricStat": {}}, {"Id": "w", "MetricStat": {}}, {"Id": "e", "Expression": "r+w"}]
    )
    assert one.monthly == pytest.approx(0.10) and math.monthly == pytest.approx(0.20)
