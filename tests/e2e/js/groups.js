// kafkajs 2.2.4's admin listGroups against a strom broker, driven by test_fresh_broker.py.
//
// Usage: node groups.js BOOTSTRAP
//
// Prints one line `RESULT <json>` with what listGroups answered, or `ERROR <json>` (the error's
// name, message and type) with exit code 1. kafkajs's own retries are left at their defaults:
// the point is what an application sees.
'use strict'
const { Kafka, logLevel } = require('kafkajs')

const [bootstrap] = process.argv.slice(2)
const kafka = new Kafka({ clientId: 'strom-e2e-kafkajs-admin', brokers: bootstrap.split(','), logLevel: logLevel.WARN })

async function main () {
  const admin = kafka.admin()
  await admin.connect()
  try {
    const listed = await admin.listGroups()
    console.log('RESULT ' + JSON.stringify(listed))
  } finally {
    await admin.disconnect()
  }
}

main().catch(e => {
  console.log('ERROR ' + JSON.stringify({ name: e.name, message: e.message, type: e.type }))
  process.exit(1)
})
