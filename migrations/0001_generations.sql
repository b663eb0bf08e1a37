CREATE TABLE `generations` (
	`id` text PRIMARY KEY NOT NULL,
	`seq` integer NOT NULL,
	`status` text DEFAULT 'queued' NOT NULL,
	`key_id` text,
	`model` text NOT NULL,
	`options` text NOT NULL,
	`step` integer DEFAULT 0 NOT NULL,
	`steps` integer NOT NULL,
	`outputs` text,
	`output_sha256` text,
	`error_code` text,
	`error_message` text,
	`attempts` integer DEFAULT 0 NOT NULL,
	`created_at` integer DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)) NOT NULL,
	`started_at` integer,
	`finished_at` integer,
	FOREIGN KEY (`key_id`) REFERENCES `api_keys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `generations_status_seq` ON `generations` (`status`,`seq`);--> statement-breakpoint
CREATE INDEX `generations_key_status` ON `generations` (`key_id`,`status`);