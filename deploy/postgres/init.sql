-- First-start initialisation of the distributed mode's Postgres (docker-compose mounts this file into
-- /docker-entrypoint-initdb.d; the postgres image runs it once, as the superuser, on an empty data
-- volume). Elsewhere run it yourself: psql -v ON_ERROR_STOP=1 -U postgres -f deploy/postgres/init.sql
--
-- One database, `crm`; per service one LOGIN role that owns one schema and can reach nothing else,
-- so "a service never reads or writes another service's schema" is enforced by Postgres itself:
--
--   role           schema     used by
--   crm_gateway    identity   gateway (CRM_GATEWAY_DATABASE_URL)
--   crm_customer   customer   customer-svc (CRM_CUSTOMER_DATABASE_URL)
--   crm_pipeline   pipeline   pipeline-svc (CRM_PIPELINE_DATABASE_URL)
--   crm_activity   activity   activity-svc (CRM_ACTIVITY_DATABASE_URL)
--   crm_ticket     ticket     ticket-svc (CRM_TICKET_DATABASE_URL)
--   crm_campaign   campaign   campaign-svc (CRM_CAMPAIGN_DATABASE_URL)
--   crm_webhook    webhook    webhook-svc (CRM_WEBHOOK_DATABASE_URL)
--
-- Passwords come from the environment (CRM_<SERVICE>_DB_PASSWORD, read with psql's \getenv, which
-- needs psql 15+); unset, each defaults to the role's short name (gateway, customer, ...), which is
-- only fit for a development machine. Tables are created by the services themselves: `crm serve`
-- runs its Alembic migrations on start, inside its own schema.

\set ON_ERROR_STOP on

\getenv gateway_password CRM_GATEWAY_DB_PASSWORD
\if :{?gateway_password}
\else
  \set gateway_password gateway
\endif
\getenv customer_password CRM_CUSTOMER_DB_PASSWORD
\if :{?customer_password}
\else
  \set customer_password customer
\endif
\getenv pipeline_password CRM_PIPELINE_DB_PASSWORD
\if :{?pipeline_password}
\else
  \set pipeline_password pipeline
\endif
\getenv activity_password CRM_ACTIVITY_DB_PASSWORD
\if :{?activity_password}
\else
  \set activity_password activity
\endif
\getenv ticket_password CRM_TICKET_DB_PASSWORD
\if :{?ticket_password}
\else
  \set ticket_password ticket
\endif
\getenv campaign_password CRM_CAMPAIGN_DB_PASSWORD
\if :{?campaign_password}
\else
  \set campaign_password campaign
\endif
\getenv webhook_password CRM_WEBHOOK_DB_PASSWORD
\if :{?webhook_password}
\else
  \set webhook_password webhook
\endif

CREATE DATABASE crm;
\connect crm

-- Nobody but the roles below connects, and nobody creates objects in `public`.
REVOKE ALL ON DATABASE crm FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

-- Each role owns its schema and nothing else: no CREATE on the database (a service only creates its
-- schema when it is missing, and here it is created for it).
CREATE ROLE crm_gateway LOGIN PASSWORD :'gateway_password';
CREATE SCHEMA identity AUTHORIZATION crm_gateway;
GRANT CONNECT, TEMPORARY ON DATABASE crm TO crm_gateway;
ALTER ROLE crm_gateway IN DATABASE crm SET search_path = identity;

CREATE ROLE crm_customer LOGIN PASSWORD :'customer_password';
CREATE SCHEMA customer AUTHORIZATION crm_customer;
GRANT CONNECT, TEMPORARY ON DATABASE crm TO crm_customer;
ALTER ROLE crm_customer IN DATABASE crm SET search_path = customer;

CREATE ROLE crm_pipeline LOGIN PASSWORD :'pipeline_password';
CREATE SCHEMA pipeline AUTHORIZATION crm_pipeline;
GRANT CONNECT, TEMPORARY ON DATABASE crm TO crm_pipeline;
ALTER ROLE crm_pipeline IN DATABASE crm SET search_path = pipeline;

CREATE ROLE crm_activity LOGIN PASSWORD :'activity_password';
CREATE SCHEMA activity AUTHORIZATION crm_activity;
GRANT CONNECT, TEMPORARY ON DATABASE crm TO crm_activity;
ALTER ROLE crm_activity IN DATABASE crm SET search_path = activity;

CREATE ROLE crm_ticket LOGIN PASSWORD :'ticket_password';
CREATE SCHEMA ticket AUTHORIZATION crm_ticket;
GRANT CONNECT, TEMPORARY ON DATABASE crm TO crm_ticket;
ALTER ROLE crm_ticket IN DATABASE crm SET search_path = ticket;

CREATE ROLE crm_campaign LOGIN PASSWORD :'campaign_password';
CREATE SCHEMA campaign AUTHORIZATION crm_campaign;
GRANT CONNECT, TEMPORARY ON DATABASE crm TO crm_campaign;
ALTER ROLE crm_campaign IN DATABASE crm SET search_path = campaign;

CREATE ROLE crm_webhook LOGIN PASSWORD :'webhook_password';
CREATE SCHEMA webhook AUTHORIZATION crm_webhook;
GRANT CONNECT, TEMPORARY ON DATABASE crm TO crm_webhook;
ALTER ROLE crm_webhook IN DATABASE crm SET search_path = webhook;
