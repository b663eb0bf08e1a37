CREATE TABLE `webhooks` (
	`id` text PRIMARY KEY NOT NULL,
	`resource` text NOT NULL,
	`job_id` text NOT NULL,
	`url` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`last_error` text,
	`created_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`delivered_at` integer
);
--> statement-breakpoint
CREATE INDEX `webhooks_status_next` ON `webhooks` (`status`,`next_attempt_at`);