ALTER TABLE "interest_runs" ADD COLUMN "status" text DEFAULT 'running' NOT NULL;--> statement-breakpoint
ALTER TABLE "interest_runs" ADD COLUMN "completed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "interest_runs" ADD CONSTRAINT "interest_runs_status" CHECK ("interest_runs"."status" IN ('running', 'completed'));