CREATE TABLE "interest_runs" (
	"as_of" text PRIMARY KEY NOT NULL,
	"annual_rate_bps" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
