"""The web console at `/` of the HTTP listener, driven in headless Chromium (Debian's `chromium`,
through `playwright-core` from npm) over data produced and consumed by confluent-kafka: the
overview with a group's lag, a topic's partitions and configs, the message browser (a value, key,
header and group id full of markup are shown, never run), a group's lag per partition and its
chart, an offset reset, a share group's members, assignment, start offsets and lag (a
ShareConsumer holding records it has not acknowledged), a topic created and deleted from forms. Screenshots are kept under
$STROM_ARTIFACTS (default $STROM_CACHE/artifacts)/console. Then, without a browser: the login
and per-principal view with an authorizer, forms refused without their token or from another
site, and bad queries answered with 4xx."""
import base64
import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from confluent_kafka import AcknowledgeType, Consumer, Producer, ShareConsumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, ResourceType, AclOperation, ResourcePatternType

from jslib import run_js
from test_acls import acl_broker, allow, as_user, create_acls

EVIL_GROUP = "<img src=x onerror=alert('group')>"
SHARE_GROUP = "queue <b>of</b> orders"
EVIL_VALUE = '{"n": %d, "html": "<script>alert(\'value\')</script>"}'


def http(b, path, method="GET", data=None, headers=None, user=None):
    """(status, headers, body) of one request to the broker's HTTP listener; no redirects followed."""
    req = urllib.request.Request(f"http://{b.http}{path}", method=method, data=data, headers=headers or {})
    if user:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode())

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def series_last(b, kind, name):
    status, _, body = http(b, f"/api/series?kind={kind}&name={urllib.parse.quote(name)}")
    assert status == 200, body
    points = json.loads(body)["points"]
    return points[-1][1] if points else None


def artifacts():
    d = os.path.join(os.environ.get("STROM_ARTIFACTS") or os.path.join(os.environ.get("STROM_CACHE", os.path.expanduser("~/.cache/strom")), "artifacts"), "console")
    os.makedirs(d, exist_ok=True)
    return d


@pytest.fixture
def share_broker(broker_factory):
    # A share group that never read a partition starts at its beginning, so the one below gets
    # the records produced before it joined.
    return broker_factory(["share.auto.offset.reset=earliest"])


def hold_share_records(bs):
    """A share consumer of `orders` that accepts the first 10 records of each partition and
    holds the other 20 unacknowledged: the group's start offsets are 10, its lag 20 per
    partition, whether the locks expire meanwhile or not. Returned open: it stays a member."""
    sc = ShareConsumer({"bootstrap.servers": bs, "group.id": SHARE_GROUP, "share.acknowledgement.mode": "explicit", "client.id": "share-viewer"})
    sc.subscribe(["orders"])
    got, deadline = [], time.time() + 30
    while len(got) < 90 and time.time() < deadline:
        for m in sc.poll(0.5):
            assert m.error() is None, m.error()
            got.append(m)
    assert len(got) == 90, f"the share consumer got {len(got)} of 90 records"
    for m in got:
        if m.offset() < 10:
            sc.acknowledge(m, AcknowledgeType.ACCEPT)
    sc.commit_sync(10)
    return sc


def test_console_in_a_real_browser(share_broker):
    broker = share_broker
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian's chromium is missing: scripts/test.sh apt-installs it")
    bs = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic("orders", 3, 1)]).values():
        f.result(15)
    p = Producer({"bootstrap.servers": bs})
    for i in range(90):
        p.produce("orders", key=f"k{i}", value=EVIL_VALUE % i, headers=[("src", b"web"), ("markup", b"<b>bold</b>")], partition=i % 3)
    assert p.flush(15) == 0
    # The group commits 10, 20 and 30 of the 30 records in each partition: lag 20 + 10 + 0.
    c = Consumer({"bootstrap.servers": bs, "group.id": EVIL_GROUP, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("orders", 0, 10), TopicPartition("orders", 1, 20), TopicPartition("orders", 2, 30)], asynchronous=False)
    c.close()
    # The charts' sampler runs every 10 s: wait for a sample that saw the commit.
    deadline = time.time() + 30
    while series_last(broker, "group-lag", EVIL_GROUP) != 30 and time.time() < deadline:
        time.sleep(0.5)
    assert series_last(broker, "group-lag", EVIL_GROUP) == 30

    sc = hold_share_records(bs)

    shots = artifacts()
    plan = {"topic": "orders", "group": EVIL_GROUP, "share": SHARE_GROUP, "created": "made-in-console"}
    try:
        proc, lines = run_js("console.js", f"http://{broker.http}", shots, json.dumps(plan), timeout=180)
    finally:
        sc.close()
    assert lines and lines[-1].startswith("RESULT "), proc.stdout + proc.stderr
    out = json.loads(lines[-1][len("RESULT "):])
    steps = out["steps"]
    assert out["dialogs"] == [] and out["pageErrors"] == [], out

    ov = steps["overview"]
    assert ov["title"] == "Overview · Strom"
    assert ov["brokers"] == "1"
    assert ov["groups"] == [EVIL_GROUP, SHARE_GROUP] and ov["groupLag"] == ["30", "60"]

    assert steps["groups"]["types"] == ["classic", "share"]
    assert steps["groups"]["members"] == ["0", "1"]
    sh = steps["share"]
    assert sh["heading"] == f"Share group {SHARE_GROUP}" and sh["type"] == "share" and sh["state"] == "Stable"
    assert sh["members"] == ["share-viewer"] and sh["subscribed"] == ["orders"]
    assert sh["assignment"] == ["orders: 0, 1, 2"]
    assert sh["partitions"] == ["0", "1", "2"]
    assert sh["starts"] == ["10", "10", "10"] and sh["ends"] == ["30", "30", "30"] and sh["lags"] == ["20", "20", "20"]
    assert sh["resetForms"] == 0 and sh["markupElements"] == 0

    assert "orders" in steps["topics"]["names"]
    assert steps["topic"]["partitions"] == ["0", "1", "2"]
    assert steps["topic"]["highWatermarks"] == ["30", "30", "30"]
    assert "retention.ms" in steps["topic"]["configs"] and "cleanup.policy" in steps["topic"]["configs"]

    m = steps["messages"]
    assert m["offsets"] == ["0", "1", "2", "3", "4"]
    assert m["keys"] == [f"k{i}" for i in (1, 4, 7, 10, 13)]
    for n, v in zip((1, 4, 7, 10, 13), m["values"]):
        assert json.loads(v) == json.loads(EVIL_VALUE % n), v  # shown as text, pretty-printed JSON
    assert all("markup: <b>bold</b>" in h and "src: web" in h for h in m["headers"]), m["headers"]
    assert m["scriptsInTable"] == 0
    assert m["next"].endswith("offset=5&limit=5&format=json")

    g = steps["group"]
    assert g["heading"] == f"Consumer group {EVIL_GROUP}"
    assert g["state"] == "Empty"
    assert g["lags"] == ["20", "10", "0"]
    assert g["chartLast"] == "30"

    assert steps["reset"]["notice"] == "reset 3 partition(s) of orders"
    assert steps["reset"]["committed"] == ["0", "0", "0"]
    c = Consumer({"bootstrap.servers": bs, "group.id": EVIL_GROUP})
    assert [tp.offset for tp in c.committed([TopicPartition("orders", p) for p in range(3)], timeout=10)] == [0, 0, 0]
    c.close()

    assert steps["created"]["notice"] == "created"
    assert steps["created"]["partitions"] == ["0", "1"]
    assert steps["created"]["configs"] == ["retention.ms"]  # the topic's own setting, in bold
    assert steps["deleted"]["notice"] == "deleted made-in-console"
    assert "made-in-console" not in steps["deleted"]["names"]
    assert "made-in-console" not in admin.list_topics(timeout=10).topics
    for name in ("overview", "share-group", "topic", "messages", "group"):
        assert os.path.getsize(os.path.join(shots, f"{name}.png")) > 10_000


def test_console_with_an_authorizer_asks_who_and_shows_what_they_may_describe(broker_factory):
    b = acl_broker(broker_factory)
    admin = AdminClient(as_user(b, "admin"))
    for f in admin.create_topics([NewTopic("visible", 1, 1), NewTopic("secret", 1, 1)]).values():
        f.result(15)
    create_acls(admin, [allow(ResourceType.TOPIC, "visible", "User:alice", AclOperation.DESCRIBE)])

    status, headers, _ = http(b, "/")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic"), status
    assert http(b, "/topics", user=("alice", "wrong"))[0] == 401
    assert http(b, "/topics", user=("mallory", "alice-pw"))[0] == 401
    # The assets carry no data: no login needed for them.
    assert http(b, "/assets/console.js")[0] == 200

    status, _, page = http(b, "/topics", user=("alice", "alice-pw"))
    assert status == 200 and "User:alice" in page
    assert ">visible<" in page and "secret" not in page
    assert "unknown topic (or not authorized to describe it)" in http(b, "/topic?name=secret", user=("alice", "alice-pw"))[2]
    assert http(b, "/api/series?kind=topic-rate&name=secret", user=("alice", "alice-pw"))[0] == 403
    assert http(b, "/api/series?kind=topic-rate&name=visible", user=("alice", "alice-pw"))[0] == 200

    # An action goes through the same checks as a Kafka client's request.
    _, _, page = http(b, "/topics", user=("alice", "alice-pw"))
    token = page.split('name="token" value="', 1)[1].split('"', 1)[0]
    form = urllib.parse.urlencode({"token": token, "name": "alices-topic", "partitions": "1"}).encode()
    status, headers, _ = http(b, "/topics", "POST", form, {"Content-Type": "application/x-www-form-urlencoded"}, user=("alice", "alice-pw"))
    assert status == 303 and "TOPIC_AUTHORIZATION_FAILED" in urllib.parse.unquote(headers["Location"]), headers["Location"]
    assert "alices-topic" not in admin.list_topics(timeout=10).topics

    status, _, page = http(b, "/topics", user=("admin", "admin-pw"))
    assert status == 200 and ">visible<" in page and ">secret<" in page


def test_console_forms_need_their_token_and_bad_queries_get_4xx(broker):
    form = {"name": "forged", "partitions": "1"}
    body = urllib.parse.urlencode(form).encode()
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    assert http(broker, "/topics", "POST", body, ctype)[0] == 403
    _, _, page = http(broker, "/topics")
    token = page.split('name="token" value="', 1)[1].split('"', 1)[0]
    with_token = urllib.parse.urlencode({**form, "token": token}).encode()
    # A page of another site posting the form, token or not, is refused.
    assert http(broker, "/topics", "POST", with_token, {**ctype, "Origin": "http://evil.example"})[0] == 403
    assert "forged" not in AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    # The console's own page may.
    status, headers, _ = http(broker, "/topics", "POST", with_token, {**ctype, "Origin": f"http://{broker.http}"})
    assert status == 303 and headers["Location"].startswith("/topic?name=forged&done=")

    assert http(broker, "/group")[0] == 400  # no id
    assert http(broker, "/api/series?kind=bogus")[0] == 400
    assert http(broker, "/topic/messages")[0] == 400
    assert http(broker, "/topics", "POST", b"\xff\xfe", ctype)[0] in (400, 422)
    assert http(broker, "/topics", "DELETE")[0] == 405
    status, _, page = http(broker, "/topic/messages?name=forged&partition=7")
    assert status == 200 and "forged has no partition 7" in page
    status, _, page = http(broker, "/topic/messages?name=forged&offset=abc")
    assert status == 200 and "&#39;abc&#39; is not an offset" in page
    # The process is still serving.
    assert http(broker, "/health")[0] == 200
