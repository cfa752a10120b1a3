CREATE TABLE "accounts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"holder" text NOT NULL,
	"currency" char(3) NOT NULL,
	"kind" text DEFAULT 'customer' NOT NULL,
	"system_name" text,
	"status" text DEFAULT 'open' NOT NULL,
	"overdraft_limit" bigint DEFAULT 0 NOT NULL,
	"balance" bigint DEFAULT 0 NOT NULL,
	"version" bigint DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "accounts_balance_floor" CHECK ("accounts"."balance" >= -"accounts"."overdraft_limit"),
	CONSTRAINT "accounts_overdraft_nonnegative" CHECK ("accounts"."overdraft_limit" >= 0),
	CONSTRAINT "accounts_currency_iso" CHECK ("accounts"."currency" ~ '^[A-Z]{3}$'),
	CONSTRAINT "accounts_system_named" CHECK (("accounts"."kind" = 'system') = ("accounts"."system_name" IS NOT NULL))
);
--> statement-breakpoint
CREATE TABLE "api_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"secret_hash" text NOT NULL,
	"scopes" text[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_keys_secret_hash_unique" UNIQUE("secret_hash")
);
--> statement-breakpoint
CREATE TABLE "applied_legs" (
	"partition" integer NOT NULL,
	"apply_seq" bigint NOT NULL,
	"transfer_id" uuid NOT NULL,
	"leg" text NOT NULL,
	"outcome" text NOT NULL,
	"epoch" bigint NOT NULL,
	"applied_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "applied_legs_partition_apply_seq_pk" PRIMARY KEY("partition","apply_seq"),
	CONSTRAINT "applied_legs_once" UNIQUE("transfer_id","leg")
);
--> statement-breakpoint
CREATE TABLE "ledger_entries" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"transfer_id" uuid NOT NULL,
	"account_id" uuid NOT NULL,
	"partition" integer NOT NULL,
	"leg" text NOT NULL,
	"amount" bigint NOT NULL,
	"balance_after" bigint NOT NULL,
	"account_version" bigint NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ledger_entries_once" UNIQUE("transfer_id","account_id","leg"),
	CONSTRAINT "ledger_entries_account_seq" UNIQUE("account_id","partition","account_version"),
	CONSTRAINT "ledger_entries_amount_nonzero" CHECK ("ledger_entries"."amount" <> 0)
);
--> statement-breakpoint
CREATE TABLE "partitions" (
	"id" integer PRIMARY KEY NOT NULL,
	"epoch" bigint DEFAULT 0 NOT NULL,
	"owner" text,
	"lease_expires_at" timestamp with time zone,
	"heartbeat_at" timestamp with time zone,
	"apply_seq" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "system_balances" (
	"account_id" uuid NOT NULL,
	"partition" integer NOT NULL,
	"balance" bigint DEFAULT 0 NOT NULL,
	"version" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "system_balances_account_id_partition_pk" PRIMARY KEY("account_id","partition")
);
--> statement-breakpoint
CREATE TABLE "transfers" (
	"id" uuid PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"from_account_id" uuid,
	"to_account_id" uuid,
	"amount" bigint NOT NULL,
	"currency" char(3) NOT NULL,
	"status" text DEFAULT 'accepted' NOT NULL,
	"failure_code" text,
	"description" text,
	"request_hash" text NOT NULL,
	"idempotency_scope" text NOT NULL,
	"idempotency_key" text,
	"reverses_transfer_id" uuid,
	"src_partition" integer NOT NULL,
	"dst_partition" integer NOT NULL,
	"accepted_at" timestamp with time zone DEFAULT now() NOT NULL,
	"debited_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	CONSTRAINT "transfers_idempotency" UNIQUE("idempotency_scope","idempotency_key"),
	CONSTRAINT "transfers_amount_positive" CHECK ("transfers"."amount" > 0),
	CONSTRAINT "transfers_failed_has_code" CHECK (("transfers"."status" <> 'failed') OR ("transfers"."failure_code" IS NOT NULL)),
	CONSTRAINT "transfers_completed_no_code" CHECK (("transfers"."status" <> 'completed') OR ("transfers"."failure_code" IS NULL))
);
--> statement-breakpoint
CREATE TABLE "worker_processes" (
	"id" text PRIMARY KEY NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"heartbeat_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "system_balances" ADD CONSTRAINT "system_balances_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "accounts_system_per_currency" ON "accounts" USING btree ("system_name","currency") WHERE "accounts"."system_name" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "transfers_sweep_accepted" ON "transfers" USING btree ("src_partition","accepted_at") WHERE "transfers"."status" = 'accepted';--> statement-breakpoint
CREATE INDEX "transfers_sweep_credit" ON "transfers" USING btree ("dst_partition","debited_at") WHERE "transfers"."status" = 'debited' AND "transfers"."failure_code" IS NULL;--> statement-breakpoint
CREATE INDEX "transfers_sweep_refund" ON "transfers" USING btree ("src_partition","debited_at") WHERE "transfers"."status" = 'debited' AND "transfers"."failure_code" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "transfers_reverses" ON "transfers" USING btree ("reverses_transfer_id") WHERE "transfers"."reverses_transfer_id" IS NOT NULL;