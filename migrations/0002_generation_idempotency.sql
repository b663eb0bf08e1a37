ALTER TABLE `generations` ADD `idempotency_key` text;--> statement-breakpoint
ALTER TABLE `generations` ADD `request_sha256` text;--> statement-breakpoint
CREATE UNIQUE INDEX `generations_key_idempotency` ON `generations` (`key_id`,`idempotency_key`);