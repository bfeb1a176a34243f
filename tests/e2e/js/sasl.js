// kafkajs with SASL (PLAIN by default, or the mechanism given: scram-sha-256, scram-sha-512,
// oauthbearer, whose PASSWORD is then the token): produce three records and read them back, or
// report a failed login.
// Usage: node sasl.js BOOTSTRAP USER PASSWORD TOPIC [MECHANISM]
const { Kafka, logLevel } = require("kafkajs");

const [bootstrap, username, password, topic, mechanism = "plain"] = process.argv.slice(2);
const kafka = new Kafka({
  clientId: "strom-sasl", brokers: [bootstrap], logLevel: logLevel.NOTHING,
  sasl: mechanism === "oauthbearer" ? { mechanism, oauthBearerProvider: async () => ({ value: password }) } : { mechanism, username, password },
  retry: { retries: 1 },
});

async function main() {
  const producer = kafka.producer();
  try {
    await producer.connect();
  } catch (e) {
    if (e.name === "KafkaJSSASLAuthenticationError") {
      console.log("RESULT auth-failed");
      return;
    }
    throw e;
  }
  await producer.send({ topic, messages: [{ value: "a" }, { value: "b" }, { value: "c" }] });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: `sasl-js-${topic}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = [];
  await new Promise((resolve) => {
    consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()); if (seen.length === 3) resolve(); } });
  });
  await consumer.disconnect();
  console.log(`RESULT produced-and-read ${seen.length}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
