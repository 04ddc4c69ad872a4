// Package queries holds the operators of the Nexmark benchmark queries q0,
// q1, q2, q3, q4, q5, q7 and q8, written with the weir Go SDK and
// registered in init. It is a library, not a module: examples/nexmark
// (package main) imports it to build the WebAssembly module, and the weir
// binary can import it to run the same operators natively.
//
// Every job reads the `nexmark` source with `format: binary`: one record
// per event, no key, the value encoded with nexmark.AppendBinary and the
// event time as timestamp. A leading stateless operator per query decodes
// the events (nexmark.DecodeBinary, which does not allocate), keeps the
// kinds the query needs and sets the key; keyed operators follow behind
// key_by edges. Keys are decimal text ("1001"). Results are compact JSON
// objects; intermediate records between operators of one query are either
// the original binary event with a new key or a small fixed-width
// little-endian encoding documented at the operator.
//
// The queries follow the Nexmark SQL of the Flink/Beam benchmark suites;
// where the SQL leaves a choice (rounding, ties, what an updating
// aggregate emits), the operator's documentation says what is emitted, and
// package examples/nexmark/reference computes the same thing independently.
//
// Operators (name, kind, what it emits):
//
//	q0          flat_map   every bid as {"auction","bidder","price","channel","url","dateTime","extra"}
//	q1          flat_map   every bid as {"auction","bidder","price","dateTime"}, price in euros: price*908/1000 (integer division)
//	q2          flat_map   bids with auction%123 == 0 as {"auction","price"}
//	q3_split    flat_map   persons in OR, ID, CA keyed by id; side output "auctions": category-10 auctions keyed by seller
//	q3_join     co_process {"name","city","state","auction"} per matching (person, auction)
//	q4_split    flat_map   auctions keyed by id; side output "bids": bids keyed by auction
//	q4_max      co_process per auction closing at expires with at least one valid bid: key category, value (auction, price) as 16 bytes
//	q4_average  process    per closed auction, the running average of its category: {"category","auctions","sum","avg"}
//	q5_bids     flat_map   bids keyed by auction, empty value
//	q5_count    aggregate  per (auction, window): key window end, value (auction, count) as 16 bytes
//	q5_hot      process    per window, the auction(s) with the most bids: {"auction","count","window_end"}
//	q7_bids     flat_map   bids keyed by the start of their 10 s window
//	q7_max      aggregate  per window, the highest bid: {"auction","price","bidder","dateTime"}
//	q8_split    flat_map   persons keyed by id; side output "auctions": auctions keyed by seller
//	q8_join     co_process persons who opened an auction in their registration window: {"id","name","window_start"}
package queries
