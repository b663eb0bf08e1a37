// drizzle-kit for the PostgreSQL store (DIFFUSABLE_DATABASE_URL): `npm run db:generate` writes
// its SQL migrations into migrations/postgres/, apart from the SQLite ones in migrations/.
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./src/store/pg-schema.ts",
  out: "./migrations/postgres",
});
