"""`strom configs` for client quotas (Kafka's kafka-configs.sh with --entity-type
users|clients|ips, --entity-default, and the --user/--client/--ip shorthands): Kafka's output
pinned, the values cross-checked with raw DescribeClientQuotas, and quotas set by the tool
taking effect."""
from test_cli_configs import configs, fails, ok
from test_quota_enforcement import THROTTLING_QUOTA_EXCEEDED, Conn, create_topics
from test_quotas import describe, throttle_max_ms


def test_alter_and_describe_as_kafka(broker):
    ok(configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "app",
               "--add-config", "producer_byte_rate=1024,request_percentage=12.5"),
       "Completed updating config for client app.\n")
    ok(configs(broker, "--describe", "--entity-type", "clients", "--entity-name", "app"),
       "Quota configs for client-id 'app' are producer_byte_rate=1024.0, request_percentage=12.5\n")
    # A user and a client id together, with the shorthands.
    ok(configs(broker, "--alter", "--user", "alice", "--client", "app", "--add-config", "consumer_byte_rate=20000000"),
       "Completed updating config for user alice.\n")
    ok(configs(broker, "--describe", "--user", "alice", "--client", "app"),
       "Quota configs for user-principal 'alice', client-id 'app' are consumer_byte_rate=2.0E7\n")
    # Defaults.
    ok(configs(broker, "--alter", "--entity-type", "users", "--entity-default", "--add-config", "controller_mutation_rate=10"),
       "Completed updating default config for users in the cluster.\n")
    ok(configs(broker, "--alter", "--ip-defaults", "--add-config", "connection_creation_rate=1000"),
       "Completed updating default config for ips in the cluster.\n")
    ok(configs(broker, "--alter", "--entity-type", "ips", "--entity-name", "10.1.2.3", "--add-config", "connection_creation_rate=5"),
       "Completed updating config for ip 10.1.2.3.\n")
    # Describing a type lists exactly the entities of that type alone (Kafka's containsOnly).
    ok(configs(broker, "--describe", "--entity-type", "users"),
       "Quota configs for the default user-principal are controller_mutation_rate=10.0\n")
    ok(configs(broker, "--describe", "--entity-type", "ips"),
       "Quota configs for ip '10.1.2.3' are connection_creation_rate=5.0\n"
       "Quota configs for the default ip are connection_creation_rate=1000.0\n")
    # The broker holds what the tool said.
    assert describe(broker.bootstrap, [("client-id", 0, "app")], strict=True) == {
        (("client-id", "app"),): {"producer_byte_rate": 1024.0, "request_percentage": 12.5}}
    assert describe(broker.bootstrap, [("user", 0, "alice"), ("client-id", 0, "app")], strict=True) == {
        (("client-id", "app"), ("user", "alice")): {"consumer_byte_rate": 20_000_000.0}}
    # --delete-config removes a key; the others stay.
    ok(configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "app", "--delete-config", "request_percentage"),
       "Completed updating config for client app.\n")
    ok(configs(broker, "--describe", "--client", "app"), "Quota configs for client-id 'app' are producer_byte_rate=1024.0\n")


def test_refusals_as_kafka(broker):
    fails(configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "app", "--delete-config", "producer_byte_rate"),
          "Invalid config(s): producer_byte_rate")
    fails(configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "app", "--add-config", "retention.ms=1"),
          "Only quota configs can be added for 'clients'", "retention.ms")
    fails(configs(broker, "--alter", "--entity-type", "ips", "--entity-name", "127.0.0.1", "--add-config", "producer_byte_rate=1"),
          "Only connection quota configs can be added for 'ips'")
    fails(configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "app", "--add-config", "producer_byte_rate=fast"),
          "Cannot parse quota configuration value for producer_byte_rate: fast")
    fails(configs(broker, "--alter", "--entity-type", "clients", "--add-config", "producer_byte_rate=1"),
          "An entity name must be specified")
    fails(configs(broker, "--alter", "--ip", "127.0.0.1", "--user", "u", "--add-config", "connection_creation_rate=1"),
          "Only 'users' and 'clients' entity types may be specified together")
    # The broker's own check (Kafka's): a byte rate is a whole number.
    fails(configs(broker, "--alter", "--client", "app", "--add-config", "producer_byte_rate=10.5"),
          "must be a Long value")


def test_quotas_set_by_the_tool_take_effect(broker):
    ok(configs(broker, "--alter", "--client", "tool-slow", "--add-config", "producer_byte_rate=100000"),
       "Completed updating config for client tool-slow.\n")
    assert throttle_max_ms(broker, "tool-slow") > 0
    ok(configs(broker, "--alter", "--client", "tool-admin", "--add-config", "controller_mutation_rate=0.1"),
       "Completed updating config for client tool-admin.\n")
    throttle, results = create_topics(Conn(broker.bootstrap, "tool-admin"), 7, ["q1", "q2", "q3"])
    assert [e for _, e in results] == [0, 0, THROTTLING_QUOTA_EXCEEDED] and throttle > 0, results
