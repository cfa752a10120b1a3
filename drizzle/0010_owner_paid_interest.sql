CREATE TABLE "interest_run_partitions" (
	"as_of" text NOT NULL,
	"partition" integer NOT NULL,
	"paid_through" uuid,
	"status" text DEFAULT 'running' NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "interest_run_partitions_as_of_partition_pk" PRIMARY KEY("as_of","partition"),
	CONSTRAINT "interest_run_partitions_status" CHECK ("interest_run_partitions"."status" IN ('running', 'completed'))
);
--> statement-breakpoint
ALTER TABLE "accounts" ADD COLUMN "partition" integer;--> statement-breakpoint
ALTER TABLE "interest_run_partitions" ADD CONSTRAINT "interest_run_partitions_as_of_interest_runs_as_of_fk" FOREIGN KEY ("as_of") REFERENCES "public"."interest_runs"("as_of") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "interest_run_partitions_running" ON "interest_run_partitions" USING btree ("partition") WHERE "interest_run_partitions"."status" = 'running';--> statement-breakpoint
CREATE INDEX "accounts_partition_id" ON "accounts" USING btree ("partition","id") WHERE "accounts"."kind" = 'customer';--> statement-breakpoint
ALTER TABLE "accounts" ADD CONSTRAINT "accounts_partition_nonnegative" CHECK ("accounts"."partition" >= 0);