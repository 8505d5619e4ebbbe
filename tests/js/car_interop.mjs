#!/usr/bin/env node
// CAR interop with the reference JS IPFS stack (@ipld/car, ipfs-unixfs-importer/-exporter).
//
//   node tests/js/car_interop.mjs read CAR_FILE ROOT_CID
//     Reads a CAR with @ipld/car's CarReader, checks every block's sha2-256 digest against its
//     CID (and decodes dag-pb blocks), then exports ROOT_CID with ipfs-unixfs-exporter and
//     prints one JSON line: {"roots": [...], "blocks": N, "size": N, "sha256": "hex"}.
//
//   node tests/js/car_interop.mjs write INPUT_FILE CAR_FILE
//     Imports INPUT_FILE with kubo's `--cid-version 1` defaults, writes the file's DAG
//     (depth-first from the root) as a CAR with @ipld/car's CarWriter, and prints the root CID.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { CarReader, CarWriter } from '@ipld/car'
import * as dagPb from '@ipld/dag-pb'
import { MemoryBlockstore } from 'blockstore-core'
import { exporter } from 'ipfs-unixfs-exporter'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'

// Same as tests/js/unixfs_cid.mjs: kubo's defaults for `ipfs add --cid-version 1`, spelled out.
const KUBO_CIDV1_DEFAULTS = {
  cidVersion: 1,
  rawLeaves: true,
  chunker: fixedSize({ chunkSize: 262_144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  reduceSingleLeafToSelf: true,
  wrapWithDirectory: false,
  fieldOrder: 'links-first'
}

function equalBytes (a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i])
}

async function readCar (carPath, rootText) {
  const reader = await CarReader.fromBytes(await readFile(carPath))
  const blockstore = new MemoryBlockstore()
  let count = 0
  for await (const { cid, bytes } of reader.blocks()) {
    const digest = await sha256.digest(bytes)
    if (cid.multihash.code !== sha256.code || !equalBytes(digest.digest, cid.multihash.digest)) {
      throw new Error(`block ${cid} does not match its CID`)
    }
    if (cid.code === dagPb.code) {
      dagPb.decode(bytes) // throws on a malformed node
    }
    await blockstore.put(cid, bytes)
    count += 1
  }
  const entry = await exporter(CID.parse(rootText), blockstore)
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of entry.content()) {
    hash.update(chunk)
    size += chunk.length
  }
  const roots = (await reader.getRoots()).map(String)
  return { roots, blocks: count, size, sha256: hash.digest('hex') }
}

async function collect (chunks) {
  const parts = []
  for await (const chunk of chunks) parts.push(chunk)
  return Buffer.concat(parts)
}

async function * dfsBlocks (root, blockstore) {
  const seen = new Set()
  const stack = [root]
  while (stack.length > 0) {
    const cid = stack.pop()
    if (seen.has(cid.toString())) continue
    seen.add(cid.toString())
    const bytes = new Uint8Array(await collect(blockstore.get(cid)))
    yield { cid, bytes }
    if (cid.code === dagPb.code) {
      const links = dagPb.decode(bytes).Links
      for (let i = links.length - 1; i >= 0; i--) stack.push(links[i].Hash)
    }
  }
}

async function writeCar (inputPath, carPath) {
  const blockstore = new MemoryBlockstore()
  let root
  for await (const entry of importer([{ content: createReadStream(inputPath) }], blockstore, KUBO_CIDV1_DEFAULTS)) {
    root = entry.cid
  }
  const { writer, out } = CarWriter.create([root])
  const written = pipeline(Readable.from(out), createWriteStream(carPath))
  for await (const block of dfsBlocks(root, blockstore)) {
    await writer.put(block)
  }
  await writer.close()
  await written
  return root.toString()
}

const [command, first, second] = process.argv.slice(2)
if (command === 'read' && first && second) {
  process.stdout.write(`${JSON.stringify(await readCar(first, second))}\n`)
} else if (command === 'write' && first && second) {
  process.stdout.write(`${await writeCar(first, second)}\n`)
} else {
  process.stderr.write('usage: node car_interop.mjs read CAR ROOT | write INPUT CAR\n')
  process.exit(2)
}
