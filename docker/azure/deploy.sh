#!/usr/bin/env bash
# Deploys the BFF topology on Azure Container Apps (docs/deployment.md, "Azure Container Apps"):
#
#   browser ──https──▶ portcullis (external ingress, 2+ replicas) ──▶ spa, api (internal ingress)
#                          │  secrets by keyvaultref, read with a user-assigned managed identity
#                          ├── Azure Key Vault: client secret, session keys, Redis connection string
#                          └── Azure Cache for Redis (TLS, port 6380): shared sessions
#
# Needs the Azure CLI (`az login`, extension `containerapp`), openssl and sha256sum. Settings
# come from the environment; the required ones:
#   PORTCULLIS_IMAGE  e.g. myregistry.azurecr.io/portcullis:0.1.0 (docker/Dockerfile)
#   SPA_IMAGE         your SPA's image (serves the app on SPA_PORT, default 80)
#   API_IMAGE         your API's image (listens on API_PORT, default 8080)
#   OIDC_ISSUER       e.g. https://example.eu.auth0.com/
#   OIDC_CLIENT_ID    the client registered at the IdP
#   OIDC_CLIENT_SECRET, or OIDC_CLIENT_SECRET_FILE: stored in Key Vault on the first run (and
#                     replaced when given again); never passed on a command line
# Optional: RESOURCE_GROUP, LOCATION, ENVIRONMENT, REDIS_NAME, VAULT_NAME, OIDC_AUDIENCE,
# SPA_PORT, API_PORT, MIN_REPLICAS (2), MAX_REPLICAS (10), CONCURRENCY (per replica, 50).
#
# Safe to run again: every resource is looked up before it is created, names are derived from
# the subscription and resource group (no random parts), and the session keys in Key Vault are
# reused, so a rerun logs nobody out.
set -euo pipefail

: "${PORTCULLIS_IMAGE:?set PORTCULLIS_IMAGE}" "${SPA_IMAGE:?set SPA_IMAGE}" "${API_IMAGE:?set API_IMAGE}"
: "${OIDC_ISSUER:?set OIDC_ISSUER}" "${OIDC_CLIENT_ID:?set OIDC_CLIENT_ID}"
RESOURCE_GROUP=${RESOURCE_GROUP:-portcullis}
LOCATION=${LOCATION:-westeurope}
ENVIRONMENT=${ENVIRONMENT:-portcullis-env}
SPA_PORT=${SPA_PORT:-80}
API_PORT=${API_PORT:-8080}
MIN_REPLICAS=${MIN_REPLICAS:-2}
MAX_REPLICAS=${MAX_REPLICAS:-10}
CONCURRENCY=${CONCURRENCY:-50}
IDENTITY=portcullis-identity

say() { printf '\n==> %s\n' "$*"; }
exists() { "$@" --output none >/dev/null 2>&1; }

# Secret values live in files readable by this user only, and reach az as --file, never as an
# argument (process lists and shell history would show it).
SECRETS_DIR=$(mktemp -d)
chmod 700 "$SECRETS_DIR"
trap 'rm -rf "$SECRETS_DIR"' EXIT

# Globally unique names that are the same on every run for this subscription and group.
SUBSCRIPTION=$(az account show --query id --output tsv)
SUFFIX=$(printf '%s/%s' "$SUBSCRIPTION" "$RESOURCE_GROUP" | sha256sum | cut -c1-10)
REDIS_NAME=${REDIS_NAME:-portcullis-$SUFFIX}
VAULT_NAME=${VAULT_NAME:-kv-portcullis-$SUFFIX}

say "resource group $RESOURCE_GROUP in $LOCATION"
if ! exists az group show --name "$RESOURCE_GROUP"; then
  az group create --name "$RESOURCE_GROUP" --location "$LOCATION" --output none
fi

say "Container Apps environment $ENVIRONMENT (with its Log Analytics workspace)"
# Without workspace arguments, az makes the workspace and wires it with its key itself: the
# key never passes through this script.
if ! exists az containerapp env show --name "$ENVIRONMENT" --resource-group "$RESOURCE_GROUP"; then
  az containerapp env create --name "$ENVIRONMENT" --resource-group "$RESOURCE_GROUP" \
    --location "$LOCATION" --logs-destination log-analytics --output none
fi

say "user-assigned managed identity $IDENTITY (reads the Key Vault secrets)"
if ! exists az identity show --name "$IDENTITY" --resource-group "$RESOURCE_GROUP"; then
  az identity create --name "$IDENTITY" --resource-group "$RESOURCE_GROUP" \
    --location "$LOCATION" --output none
fi
IDENTITY_ID=$(az identity show --name "$IDENTITY" --resource-group "$RESOURCE_GROUP" --query id --output tsv)
IDENTITY_PRINCIPAL=$(az identity show --name "$IDENTITY" --resource-group "$RESOURCE_GROUP" \
  --query principalId --output tsv)

say "Key Vault $VAULT_NAME (RBAC)"
if ! exists az keyvault show --name "$VAULT_NAME" --resource-group "$RESOURCE_GROUP"; then
  az keyvault create --name "$VAULT_NAME" --resource-group "$RESOURCE_GROUP" \
    --location "$LOCATION" --enable-rbac-authorization true --output none
fi
VAULT_ID=$(az keyvault show --name "$VAULT_NAME" --resource-group "$RESOURCE_GROUP" --query id --output tsv)
VAULT_URI=$(az keyvault show --name "$VAULT_NAME" --resource-group "$RESOURCE_GROUP" \
  --query properties.vaultUri --output tsv)
grant() { # principal object id, role, principal type
  if [ -z "$(az role assignment list --assignee "$1" --role "$2" --scope "$VAULT_ID" --query '[].id' --output tsv)" ]; then
    az role assignment create --assignee-object-id "$1" --assignee-principal-type "$3" \
      --role "$2" --scope "$VAULT_ID" --output none
  fi
}
# This script writes the secrets; the app's identity only reads them.
grant "$(az ad signed-in-user show --query id --output tsv)" "Key Vault Secrets Officer" User
grant "$IDENTITY_PRINCIPAL" "Key Vault Secrets User" ServicePrincipal

# Stores the file's content as the vault secret $1.
store() { az keyvault secret set --vault-name "$VAULT_NAME" --name "$1" --file "$2" --output none; }
has_secret() { exists az keyvault secret show --vault-name "$VAULT_NAME" --name "$1"; }

say "secrets in Key Vault"
if [ -n "${OIDC_CLIENT_SECRET_FILE:-}" ]; then
  store oidc-client-secret "$OIDC_CLIENT_SECRET_FILE"
elif [ -n "${OIDC_CLIENT_SECRET:-}" ]; then
  printf '%s' "$OIDC_CLIENT_SECRET" >"$SECRETS_DIR/oidc-client-secret"
  store oidc-client-secret "$SECRETS_DIR/oidc-client-secret"
elif ! has_secret oidc-client-secret; then
  echo "set OIDC_CLIENT_SECRET or OIDC_CLIENT_SECRET_FILE (stored in $VAULT_NAME)" >&2
  exit 1
fi
# Session keys are made once: regenerating them would end every session.
if ! has_secret session-keys; then
  openssl rand -base64 32 | tr -d '\n' >"$SECRETS_DIR/session-keys"
  store session-keys "$SECRETS_DIR/session-keys"
fi

say "Azure Cache for Redis $REDIS_NAME (TLS only; creating one takes 15-20 minutes)"
if ! exists az redis show --name "$REDIS_NAME" --resource-group "$RESOURCE_GROUP"; then
  az redis create --name "$REDIS_NAME" --resource-group "$RESOURCE_GROUP" --location "$LOCATION" \
    --sku Standard --vm-size c0 --minimum-tls-version 1.2 --output none
fi
REDIS_HOST=$(az redis show --name "$REDIS_NAME" --resource-group "$RESOURCE_GROUP" --query hostName --output tsv)
# The StackExchange.Redis form the portal shows; Portcullis reads it as is (TLS on 6380). Kept
# in step with the access key on every run (rotate the key, rerun the script).
{
  printf '%s:6380,password=' "$REDIS_HOST"
  az redis list-keys --name "$REDIS_NAME" --resource-group "$RESOURCE_GROUP" --query primaryKey --output tsv | tr -d '\n'
  printf ',ssl=True,abortConnect=False'
} >"$SECRETS_DIR/redis-connection-string"
store redis-connection-string "$SECRETS_DIR/redis-connection-string"

say "SPA and API with internal ingress: reachable only from inside the environment"
for app in spa api; do
  image=$SPA_IMAGE port=$SPA_PORT
  [ "$app" = api ] && image=$API_IMAGE port=$API_PORT
  if exists az containerapp show --name "$app" --resource-group "$RESOURCE_GROUP"; then
    az containerapp update --name "$app" --resource-group "$RESOURCE_GROUP" --image "$image" --output none
  else
    az containerapp create --name "$app" --resource-group "$RESOURCE_GROUP" \
      --environment "$ENVIRONMENT" --image "$image" --target-port "$port" \
      --ingress internal --min-replicas 1 --output none
  fi
done
SPA_FQDN=$(az containerapp show --name spa --resource-group "$RESOURCE_GROUP" \
  --query properties.configuration.ingress.fqdn --output tsv)
API_FQDN=$(az containerapp show --name api --resource-group "$RESOURCE_GROUP" \
  --query properties.configuration.ingress.fqdn --output tsv)

say "Portcullis with external ingress, $MIN_REPLICAS-$MAX_REPLICAS replicas"
# Container Apps secrets that point into Key Vault, read with the managed identity: the values
# never pass through Container Apps' own configuration.
KV_SECRETS=()
for name in oidc-client-secret session-keys redis-connection-string; do
  KV_SECRETS+=("$name=keyvaultref:${VAULT_URI%/}/secrets/$name,identityref:$IDENTITY_ID")
done
if ! exists az containerapp show --name portcullis --resource-group "$RESOURCE_GROUP"; then
  # Its public name is known once the app exists: create it, then set what uses the name.
  az containerapp create --name portcullis --resource-group "$RESOURCE_GROUP" \
    --environment "$ENVIRONMENT" --image "$PORTCULLIS_IMAGE" --target-port 8080 \
    --ingress external --min-replicas "$MIN_REPLICAS" --max-replicas "$MAX_REPLICAS" \
    --user-assigned "$IDENTITY_ID" --secrets "${KV_SECRETS[@]}" --output none
else
  az containerapp identity assign --name portcullis --resource-group "$RESOURCE_GROUP" \
    --user-assigned "$IDENTITY_ID" --output none
  az containerapp secret set --name portcullis --resource-group "$RESOURCE_GROUP" \
    --secrets "${KV_SECRETS[@]}" --output none
fi
PORTCULLIS_FQDN=$(az containerapp show --name portcullis --resource-group "$RESOURCE_GROUP" \
  --query properties.configuration.ingress.fqdn --output tsv)

# Every setting is a documented PORTCULLIS__* key (docs/configuration.md); secrets only by
# secretref. tests/it/azure.rs runs `portcullis check` on exactly these.
ENV_VARS=(
  "PORTCULLIS__SERVER__PUBLIC_ORIGIN=https://${PORTCULLIS_FQDN}"
  # Only the environment's ingress (Envoy, on private addresses) can reach the app.
  "PORTCULLIS__SERVER__TRUSTED_PROXIES=10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10"
  "PORTCULLIS__OIDC__ISSUER=${OIDC_ISSUER}"
  "PORTCULLIS__OIDC__CLIENT_ID=${OIDC_CLIENT_ID}"
  "PORTCULLIS__OIDC__CLIENT_SECRET=secretref:oidc-client-secret"
  "PORTCULLIS__SESSION__STORE=redis"
  "PORTCULLIS__SESSION__ENCRYPTION_KEYS=secretref:session-keys"
  "PORTCULLIS__REDIS__CONNECTION_STRING=secretref:redis-connection-string"
  "PORTCULLIS__CLUSTERS__SPA__DESTINATIONS=https://${SPA_FQDN}"
  "PORTCULLIS__CLUSTERS__API__DESTINATIONS=https://${API_FQDN}"
  "PORTCULLIS__ROUTES__0__PATH=/api/"
  "PORTCULLIS__ROUTES__0__CLUSTER=api"
  "PORTCULLIS__ROUTES__0__TOKEN=user"
  "PORTCULLIS__ROUTES__1__PATH=/"
  "PORTCULLIS__ROUTES__1__CLUSTER=spa"
  "PORTCULLIS__LOG__FORMAT=json"
  # Replicas stop getting new connections a few seconds after a revision is deactivated.
  "PORTCULLIS__PINGORA__SHUTDOWN_DELAY=5s"
)
if [ -n "${OIDC_AUDIENCE:-}" ]; then
  ENV_VARS+=("PORTCULLIS__OIDC__AUTHORIZE_PARAMS__AUDIENCE=${OIDC_AUDIENCE}")
fi
# One update sets the variables, probes, resources and the HTTP scale rule (a YAML update
# replaces the container's whole definition). Probes use the admin port, which the ingress does
# not expose. A new revision starts, and replaces the old one once ready.
{
  cat <<YAML
properties:
  template:
    containers:
      - name: portcullis
        image: ${PORTCULLIS_IMAGE}
        resources: { cpu: 0.5, memory: 1Gi }
        env:
YAML
  for pair in "${ENV_VARS[@]}"; do
    name=${pair%%=*} value=${pair#*=}
    if [[ $value == secretref:* ]]; then
      printf '          - name: %s\n            secretRef: %s\n' "$name" "${value#secretref:}"
    else
      printf '          - name: %s\n            value: "%s"\n' "$name" "$value"
    fi
  done
  cat <<YAML
        probes:
          - type: Startup
            httpGet: { path: /healthz, port: 9090 }
            periodSeconds: 2
            failureThreshold: 30
          - type: Liveness
            httpGet: { path: /healthz, port: 9090 }
            periodSeconds: 10
          - type: Readiness
            httpGet: { path: /readyz, port: 9090 }
            periodSeconds: 5
    scale:
      minReplicas: ${MIN_REPLICAS}
      maxReplicas: ${MAX_REPLICAS}
      rules:
        - name: http-concurrency
          http:
            metadata:
              concurrentRequests: "${CONCURRENCY}"
YAML
} >"$SECRETS_DIR/portcullis-aca.yaml"
az containerapp update --name portcullis --resource-group "$RESOURCE_GROUP" \
  --yaml "$SECRETS_DIR/portcullis-aca.yaml" --output none

say "done"
cat <<EOF

  Portcullis: https://${PORTCULLIS_FQDN}
  Secrets:    Key Vault ${VAULT_NAME} (oidc-client-secret, session-keys, redis-connection-string)

  Register at the IdP (Auth0: Applications -> your app -> Settings):
    Allowed Callback URLs:  https://${PORTCULLIS_FQDN}/signin-oidc
    Allowed Logout URLs:    https://${PORTCULLIS_FQDN}/signout-callback-oidc
    Back-channel logout:    https://${PORTCULLIS_FQDN}/bff/backchannel (where supported)
EOF
