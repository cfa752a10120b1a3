ALTER TABLE "transfers" DROP CONSTRAINT "transfers_amount_positive";--> statement-breakpoint
ALTER TABLE "transfers" DROP CONSTRAINT "transfers_type";--> statement-breakpoint
ALTER TABLE "transfers" DROP CONSTRAINT "transfers_shape";--> statement-breakpoint
ALTER TABLE "transfers" DROP CONSTRAINT "transfers_failure_code";--> statement-breakpoint
ALTER TABLE "transfers" ADD COLUMN "cancels_transfer_id" uuid;--> statement-breakpoint
ALTER TABLE "transfers" ADD COLUMN "expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "transfers" ADD CONSTRAINT "transfers_amount_positive" CHECK (CASE WHEN "transfers"."type" IN ('close', 'cancel') THEN "transfers"."amount" = 0 ELSE "transfers"."amount" > 0 END);--> statement-breakpoint
ALTER TABLE "transfers" ADD CONSTRAINT "transfers_type" CHECK ("transfers"."type" IN ('deposit', 'withdrawal', 'transfer', 'reversal', 'interest', 'close', 'cancel'));--> statement-breakpoint
ALTER TABLE "transfers" ADD CONSTRAINT "transfers_shape" CHECK (CASE "transfers"."type"
            WHEN 'deposit' THEN "transfers"."from_account_id" IS NULL AND "transfers"."to_account_id" IS NOT NULL
            WHEN 'interest' THEN "transfers"."from_account_id" IS NULL AND "transfers"."to_account_id" IS NOT NULL
            WHEN 'withdrawal' THEN "transfers"."from_account_id" IS NOT NULL AND "transfers"."to_account_id" IS NULL
            WHEN 'close' THEN "transfers"."from_account_id" IS NOT NULL AND "transfers"."to_account_id" IS NULL
            WHEN 'cancel' THEN "transfers"."from_account_id" IS NOT NULL AND "transfers"."to_account_id" IS NULL
                 AND "transfers"."cancels_transfer_id" IS NOT NULL
            ELSE "transfers"."from_account_id" IS NOT NULL AND "transfers"."to_account_id" IS NOT NULL
                 AND "transfers"."from_account_id" <> "transfers"."to_account_id"
          END);--> statement-breakpoint
ALTER TABLE "transfers" ADD CONSTRAINT "transfers_failure_code" CHECK ("transfers"."failure_code" IN ('account_not_found', 'account_closed', 'currency_mismatch', 'insufficient_funds', 'balance_overflow', 'account_not_empty', 'cancelled', 'expired', 'too_late'));