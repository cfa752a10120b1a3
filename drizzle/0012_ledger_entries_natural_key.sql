-- ledger_entries keeps its natural key: (account, partition, account_version) is unique already
-- and is the per-account history's keyset index. The surrogate bigserial id went: four sequence
-- calls and four index entries per transfer, about 8 % of PostgreSQL's CPU on a drain. The old
-- primary key goes with its column; the unique constraint becomes the primary key, under the
-- same name (one index build, under this migration's lock).
ALTER TABLE "ledger_entries" DROP COLUMN "id";--> statement-breakpoint
ALTER TABLE "ledger_entries" DROP CONSTRAINT "ledger_entries_account_seq";--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_account_seq" PRIMARY KEY("account_id","partition","account_version");
