#!/usr/bin/env node
// Print the CID that `ipfs add --cid-version 1` (kubo defaults) gives each file.
//
// Usage: node tests/js/unixfs_cid.mjs FILE [FILE ...]   -> one CID per line, in argv order.
//
// The importer options below spell out kubo's defaults for `--cid-version 1` explicitly,
// so a change of defaults in a future ipfs-unixfs-importer release cannot silently change
// what this reference script computes.
import { createReadStream } from 'node:fs'
import { MemoryBlockstore } from 'blockstore-core'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const KUBO_CIDV1_DEFAULTS = {
  cidVersion: 1,
  rawLeaves: true, // kubo turns raw leaves on whenever --cid-version 1 is given
  chunker: fixedSize({ chunkSize: 262_144 }), // kubo "size-262144"
  layout: balanced({ maxChildrenPerNode: 174 }), // kubo's balanced DAG, 174 links per node
  reduceSingleLeafToSelf: true, // a one-chunk file is its raw leaf, no wrapping node
  wrapWithDirectory: false,
  fieldOrder: 'links-first' // dag-pb canonical order: Links (2) before Data (1)
}

async function cidOf (path) {
  const blockstore = new MemoryBlockstore()
  let root
  // No `path` on the entry: a bare file import, like `ipfs add FILE` without -w.
  const source = [{ content: createReadStream(path) }]
  for await (const entry of importer(source, blockstore, KUBO_CIDV1_DEFAULTS)) {
    root = entry
  }
  if (root == null) {
    throw new Error(`nothing imported from ${path}`)
  }
  return root.cid.toString()
}

const paths = process.argv.slice(2)
if (paths.length === 0) {
  process.stderr.write('usage: node unixfs_cid.mjs FILE [FILE ...]\n')
  process.exit(2)
}
for (const path of paths) {
  process.stdout.write(`${await cidOf(path)}\n`)
}
