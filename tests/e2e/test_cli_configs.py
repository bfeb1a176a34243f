"""`strom configs` (Kafka's kafka-configs.sh) against a real broker: the describe format pinned,
incremental --alter (a key not named survives), --all, broker configs, and one-line errors with a
non-zero exit. Values are cross-checked with confluent-kafka's AdminClient.describe_configs.

The synonyms (every level that sets a key) are pinned once, in
test_describe_lists_synonyms_highest_precedence_first; elsewhere `configs()` blanks them so the
other checks read simply.
"""
import re
import subprocess

from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

from conftest import STROM_BIN

WEEK_MS = str(7 * 24 * 3600 * 1000)


def strom(*args, timeout=30):
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=timeout)


def configs(broker, *args, raw=False):
    r = strom("configs", "--bootstrap-server", broker.bootstrap, *args)
    if not raw:
        r.stdout = re.sub(r" synonyms=\{[^\n]*\}$", " synonyms={}", r.stdout, flags=re.M)
    return r


def ok(r, stdout):
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout == stdout, r.stdout


def fails(r, *needles):
    """A refused command: non-zero exit, nothing on stdout, one `Error: ...` line naming `needles`."""
    assert r.returncode != 0, r.stdout
    assert r.stdout == "", r.stdout
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr
    return r.stderr


def line(key, value):
    return f"  {key}={value} sensitive=false synonyms={{}}\n"


def described(admin, rtype, name):
    res = ConfigResource(rtype, name)
    return admin.describe_configs([res])[res].result(10)


def test_topic_describe_and_incremental_alter(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert strom("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", "cfg").returncode == 0
    ok(configs(broker, "--topic", "cfg", "--describe"), "Dynamic configs for topic cfg are:\n")

    # A bracketed list value, spaces around `=` as Kafka's parser allows; the long form of the entity.
    ok(configs(broker, "--entity-type", "topics", "--entity-name", "cfg", "--alter",
               "--add-config", "cleanup.policy=[compact,delete], retention.ms = 3600000"),
       "Completed updating config for topic cfg.\n")
    ok(configs(broker, "--topic", "cfg", "--describe"),
       "Dynamic configs for topic cfg are:\n" + line("cleanup.policy", "compact,delete") + line("retention.ms", "3600000"))
    got = described(admin, "topic", "cfg")
    assert got["cleanup.policy"].value == "compact,delete"
    assert got["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert got["retention.ms"].value == "3600000"

    # Incremental: a later --add-config and a --delete-config leave every key they do not name.
    ok(configs(broker, "--topic", "cfg", "--alter", "--add-config", "segment.ms=7200000"),
       "Completed updating config for topic cfg.\n")
    ok(configs(broker, "--topic", "cfg", "--alter", "--delete-config", "retention.ms"),
       "Completed updating config for topic cfg.\n")
    ok(configs(broker, "--topic", "cfg", "--describe"),
       "Dynamic configs for topic cfg are:\n" + line("cleanup.policy", "compact,delete") + line("segment.ms", "7200000"))
    got = described(admin, "topic", "cfg")
    assert got["retention.ms"].value == WEEK_MS and got["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert got["segment.ms"].value == "7200000" and got["cleanup.policy"].value == "compact,delete"

    # Deleting a key that is not set is refused, as Kafka's tool does; nothing changes.
    fails(configs(broker, "--topic", "cfg", "--alter", "--delete-config", "retention.ms,segment.ms"),
          "Invalid config(s): retention.ms")
    # Delete and set in one request: deletes apply first.
    ok(configs(broker, "--topic", "cfg", "--alter", "--delete-config", "segment.ms", "--add-config", "retention.ms=5000"),
       "Completed updating config for topic cfg.\n")
    ok(configs(broker, "--topic", "cfg", "--describe"),
       "Dynamic configs for topic cfg are:\n" + line("cleanup.policy", "compact,delete") + line("retention.ms", "5000"))

    # --all: every config, sorted, defaults included, the same values confluent-kafka reads.
    r = configs(broker, "--topic", "cfg", "--describe", "--all")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "All configs for topic cfg are:"
    got = described(admin, "topic", "cfg")
    assert lines[1:] == [line(k, got[k].value).rstrip("\n") for k in sorted(got)]
    assert "  segment.ms=604800000 sensitive=false synonyms={}" in lines  # the default again
    assert "  retention.ms=5000 sensitive=false synonyms={}" in lines

    # Without a name: every topic.
    assert strom("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", "other").returncode == 0
    ok(configs(broker, "--entity-type", "topics", "--describe"),
       "Dynamic configs for topic cfg are:\n" + line("cleanup.policy", "compact,delete") + line("retention.ms", "5000")
       + "Dynamic configs for topic other are:\n")


def test_broker_describe_and_alter(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    ok(configs(broker, "--broker", "1", "--describe"), "Dynamic configs for broker 1 are:\n")
    ok(configs(broker, "--entity-type", "brokers", "--entity-default", "--describe"),
       "Default configs for brokers in the cluster are:\n")

    ok(configs(broker, "--broker", "1", "--alter", "--add-config", "log.retention.ms=600000,log.cleanup.policy=[compact,delete]"),
       "Completed updating config for broker 1.\n")
    got = described(admin, "broker", "1")
    assert got["log.retention.ms"].value == "600000"
    assert got["log.cleanup.policy"].value == "compact,delete"
    # Set through broker 1, they are broker 1's own (DYNAMIC_BROKER_CONFIG), not the cluster's.
    assert got["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    own = ("Dynamic configs for broker 1 are:\n"
           + line("log.cleanup.policy", "compact,delete") + line("log.retention.ms", "600000"))
    no_defaults = "Default configs for brokers in the cluster are:\n"
    ok(configs(broker, "--broker-defaults", "--describe"), no_defaults)
    ok(configs(broker, "--entity-type", "brokers", "--entity-name", "1", "--describe"), own)
    ok(configs(broker, "--entity-type", "brokers", "--describe"), own + no_defaults)
    r = configs(broker, "--broker", "1", "--describe", "--all")
    assert r.returncode == 0 and r.stdout.startswith("All configs for broker 1 are:\n"), r.stderr
    assert line("log.retention.ms", "600000") in r.stdout and line("num.partitions", "1") in r.stdout
    assert r.stdout.count("\n") == len(got) + 1
    # The topic default follows it.
    assert strom("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", "t").returncode == 0
    assert line("retention.ms", "600000") in configs(broker, "--topic", "t", "--describe", "--all").stdout

    ok(configs(broker, "--broker", "1", "--alter", "--delete-config", "log.cleanup.policy"),
       "Completed updating config for broker 1.\n")
    ok(configs(broker, "--broker", "1", "--describe"), "Dynamic configs for broker 1 are:\n" + line("log.retention.ms", "600000"))
    assert described(admin, "broker", "1")["log.cleanup.policy"].value == "delete"

    fails(configs(broker, "--broker", "1", "--alter", "--add-config", "num.partitions=3"), "INVALID_CONFIG", "num.partitions")
    fails(configs(broker, "--broker", "7", "--describe"), "broker '7' doesn't exist")
    fails(configs(broker, "--broker", "x", "--describe"), "must be a valid integer broker id")
    # The cluster's default level (the empty broker name, which the tool sends itself):
    # broker 1's own value stays over it, a key broker 1 does not set takes it.
    ok(configs(broker, "--entity-type", "brokers", "--entity-default", "--alter", "--add-config", "log.retention.ms=1,log.segment.bytes=2000000"),
       "Completed updating default config for brokers in the cluster.\n")
    ok(configs(broker, "--broker-defaults", "--describe"),
       "Default configs for brokers in the cluster are:\n" + line("log.retention.ms", "1") + line("log.segment.bytes", "2000000"))
    got = described(admin, "broker", "1")
    assert got["log.retention.ms"].value == "600000" and got["log.segment.bytes"].value == "2000000"
    assert got["log.segment.bytes"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    fails(configs(broker, "--broker-defaults", "--alter", "--delete-config", "log.cleanup.policy"), "Invalid config(s): log.cleanup.policy")


def test_errors(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    bs = ["--bootstrap-server", broker.bootstrap]
    assert strom("topics", *bs, "--create", "--topic", "t", "--config", "retention.ms=1000").returncode == 0

    fails(configs(broker, "--topic", "nope", "--describe"), "Topic 'nope' does not exist", "UNKNOWN_TOPIC_OR_PARTITION")
    fails(configs(broker, "--topic", "nope", "--describe", "--all"), "UNKNOWN_TOPIC_OR_PARTITION")
    fails(configs(broker, "--topic", "nope", "--alter", "--add-config", "retention.ms=1"), "UNKNOWN_TOPIC_OR_PARTITION")
    assert strom("topics", *bs, "--list").stdout == "t\n", "describing or altering must not create the topic"

    # The broker's INVALID_CONFIG message is shown; nothing of the request is applied.
    fails(configs(broker, "--topic", "t", "--alter", "--add-config", "segment.ms=5,retention.ms=abc"),
          "INVALID_CONFIG", "retention.ms", "abc")
    fails(configs(broker, "--topic", "t", "--alter", "--add-config", "retention.mss=1"), "INVALID_CONFIG", "retention.mss")
    got = described(admin, "topic", "t")
    assert got["retention.ms"].value == "1000" and got["segment.ms"].value == WEEK_MS

    # Bad flags and values, refused before anything is sent.
    fails(configs(broker, "--topic", "t", "--alter", "--add-config", "retention.ms"), "Invalid entity config")
    fails(configs(broker, "--topic", "t", "--alter"), "At least one of --add-config")
    fails(configs(broker, "--topic", "t", "--alter", "--add-config", "a=1", "--delete-config", "a"), "`a`")
    fails(configs(broker, "--entity-type", "topics", "--alter", "--add-config", "retention.ms=1"), "An entity name must be specified")
    fails(configs(broker, "--topic", "t", "--entity-type", "topics", "--describe"), "should not be used in conjunction")
    for args in (["--topic", "t"], ["--topic", "t", "--describe", "--alter"], ["--entity-type", "clients", "--describe"],
                 ["--topic", "t", "--describe", "--add-config", "a=1"], ["--topic", "t", "--alter", "--all"]):
        r = configs(broker, *args)
        assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith("error: "), (args, r.stderr)
    assert described(admin, "topic", "t")["retention.ms"].value == "1000"


def test_describe_lists_synonyms_highest_precedence_first(broker_factory):
    b = broker_factory(["log.cleanup.policy=delete"])
    assert strom("topics", "--bootstrap-server", b.bootstrap, "--create", "--topic", "syn").returncode == 0
    assert configs(b, "--topic", "syn", "--alter", "--add-config", "cleanup.policy=compact").returncode == 0
    r = configs(b, "--topic", "syn", "--describe", raw=True)
    assert r.stdout == ("Dynamic configs for topic syn are:\n"
                        "  cleanup.policy=compact sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact, "
                        "STATIC_BROKER_CONFIG:log.cleanup.policy=delete, DEFAULT_CONFIG:log.cleanup.policy=delete}\n"), r.stdout
    r = configs(b, "--topic", "syn", "--describe", "--all", raw=True)
    assert "  segment.bytes=1073741824 sensitive=false synonyms={DEFAULT_CONFIG:log.segment.bytes=1073741824}\n" in r.stdout
