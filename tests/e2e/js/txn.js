// Transactions with kafkajs 2.2.4 against a strom broker, driven by test_transactions_clients.py.
//
// Usage: node txn.js BOOTSTRAP TOPIC TRANSACTIONAL_ID SOURCE_TOPIC GROUP
//
// 1. A transactional producer writes three transactions of 5 records to TOPIC partition 0:
//    committed (c0-*), aborted (a1-*), committed (c2-*).
// 2. A read_committed consumer (readUncommitted: false, kafkajs's default) and a read_uncommitted
//    one read TOPIC from the beginning until they have seen c2-4, then one second more.
// 3. Two more transactions write out-* records to TOPIC and send offsets for GROUP on
//    SOURCE_TOPIC partition 0 with sendOffsets: offset 10, committed; then offset 20, aborted.
// Prints one line `RESULT <json>` with the offsets and values it saw; the test asserts on it and
// checks the group's offsets itself. On failure: `ERROR <json>` (with what it saw so far) and exit
// code 1.
'use strict'
const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, topic, transactionalId, source, group] = process.argv.slice(2)
const kafka = new Kafka({
  clientId: 'strom-e2e-kafkajs',
  brokers: bootstrap.split(','),
  logLevel: logLevel.WARN, // warnings and errors go to stderr
  retry: { initialRetryTime: 200, maxRetryTime: 2000, retries: 8 },
})

const values = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)

async function inTransaction (producer, outcome, body) {
  const txn = await producer.transaction()
  try {
    const result = await body(txn)
    await (outcome === 'commit' ? txn.commit() : txn.abort())
    return result
  } catch (e) {
    if (txn.isActive()) await txn.abort().catch(() => {})
    throw e
  }
}

async function send (txn, vals) {
  const meta = await txn.send({ topic, messages: vals.map(value => ({ value, partition: 0 })), acks: -1 })
  return meta.map(m => Number(m.baseOffset))
}

async function read (readUncommitted, last) {
  const consumer = kafka.consumer({
    groupId: `${transactionalId}-reader-${readUncommitted ? 'ru' : 'rc'}`,
    readUncommitted,
    sessionTimeout: 10000,
    heartbeatInterval: 1000,
  })
  const got = []
  let timer = null
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    let seenLast = null
    const done = new Promise(resolve => { seenLast = resolve })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        got.push([partition, Number(message.offset), message.value.toString()])
        if (message.value.toString() === last) seenLast()
      },
    })
    const timeout = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${readUncommitted ? 'read_uncommitted' : 'read_committed'} consumer did not see ${last} in 30 s; got ${JSON.stringify(got)}`)), 30000)
    })
    await Promise.race([done, timeout])
    await new Promise(resolve => setTimeout(resolve, 1000))
  } finally {
    clearTimeout(timer) // a pending timer would keep node running for up to 30 s
    await consumer.disconnect()
  }
  return got
}

const result = { offsets: {} } // printed with the error, too: how far it got

async function main () {
  const producer = kafka.producer({ transactionalId, maxInFlightRequests: 1, idempotent: true, transactionTimeout: 30000 })
  await producer.connect()
  try {
    const batches = [['c0', 'commit'], ['a1', 'abort'], ['c2', 'commit']]
    for (const [prefix, outcome] of batches) {
      result.offsets[prefix] = await inTransaction(producer, outcome, txn => send(txn, values(prefix, 5)))
    }
    result.read_committed = await read(false, 'c2-4')
    result.read_uncommitted = await read(true, 'c2-4')

    for (const [prefix, offset, outcome] of [['out10', '10', 'commit'], ['out20', '20', 'abort']]) {
      await inTransaction(producer, outcome, async txn => {
        result.offsets[prefix] = await send(txn, values(prefix, 2))
        await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic: source, partitions: [{ partition: 0, offset }] }] })
      })
    }
  } finally {
    await producer.disconnect()
  }
  console.log('RESULT ' + JSON.stringify(result))
}

main().catch(e => {
  console.log('ERROR ' + JSON.stringify({ name: e.name, message: e.message, type: e.type, retriable: e.retriable, cause: e.cause && e.cause.message, partial: result }))
  process.exit(1)
})
