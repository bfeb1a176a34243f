// kafkajs 2.2.4 beyond transactions, driven by test_kafkajs.py: admin, producer, and a consumer
// group that commits and is resumed by a new consumer.
//
// Usage: node clients.js BOOTSTRAP TOPIC GROUP
//
// 1. admin: createTopics (TOPIC with 2 partitions and retention.ms=3600000, and TOPIC-gone),
//    fetchTopicMetadata, describeConfigs, deleteTopics (TOPIC-gone), listTopics.
// 2. producer: 12 messages (key = value = m-i), acks -1.
// 3. consumer in GROUP: eachMessage with autoCommit off, commitOffsets after each message, stops
//    after 5; a second consumer in GROUP takes the remaining 7.
// 4. admin: fetchOffsets and describeGroups of GROUP.
// Prints `RESULT <json>`; on failure `ERROR <json>` and exit code 1.
'use strict'
const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs')

const [bootstrap, topic, group] = process.argv.slice(2)
const kafka = new Kafka({ clientId: 'strom-e2e-kafkajs-clients', brokers: bootstrap.split(','), logLevel: logLevel.WARN,
  retry: { initialRetryTime: 200, maxRetryTime: 2000, retries: 8 } })
const result = {}

async function consume (n, label) {
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 1000 })
  const got = []
  let timer = null
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    let enough = null
    const done = new Promise(resolve => { enough = resolve })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (got.length >= n) return
        got.push([partition, Number(message.offset), message.value.toString()])
        await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
        if (got.length === n) enough()
      },
    })
    const timeout = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${label}: ${got.length} of ${n} messages in 30 s`)), 30000)
    })
    await Promise.race([done, timeout])
  } finally {
    clearTimeout(timer) // a pending timer would keep node running
    await consumer.disconnect()
  }
  return got
}

async function main () {
  const admin = kafka.admin()
  await admin.connect()
  try {
    result.created = await admin.createTopics({ waitForLeaders: true, topics: [
      { topic, numPartitions: 2, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] },
      { topic: `${topic}-gone`, numPartitions: 1, replicationFactor: 1 }] })
    const meta = await admin.fetchTopicMetadata({ topics: [topic] })
    result.partitions = meta.topics[0].partitions.map(p => p.partitionId).sort()
    const configs = await admin.describeConfigs({ includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }] })
    result.configs = configs.resources[0].configEntries.map(e => [e.configName, e.configValue])
    await admin.deleteTopics({ topics: [`${topic}-gone`] })
    result.topics = (await admin.listTopics()).filter(t => !t.startsWith('__')).sort()

    const producer = kafka.producer()
    await producer.connect()
    try {
      const messages = Array.from({ length: 12 }, (_, i) => ({ key: `m-${i}`, value: `m-${i}` }))
      const acks = await producer.send({ topic, messages, acks: -1 })
      result.acks = acks.map(a => [a.partition, Number(a.baseOffset)])
    } finally {
      await producer.disconnect()
    }

    result.first = await consume(5, 'first consumer')
    result.second = await consume(7, 'second consumer')
    result.committed = (await admin.fetchOffsets({ groupId: group, topics: [topic] }))[0].partitions
      .map(p => [p.partition, Number(p.offset)]).sort()
    const described = await admin.describeGroups([group])
    result.group = described.groups.map(g => [g.groupId, g.state, g.protocolType, g.members.length])
  } finally {
    await admin.disconnect()
  }
  console.log('RESULT ' + JSON.stringify(result))
}

main().catch(e => {
  console.log('ERROR ' + JSON.stringify({ name: e.name, message: e.message, type: e.type, partial: result }))
  process.exit(1)
})
