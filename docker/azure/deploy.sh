#!/usr/bin/env bash
# Deploys the BFF topology on Azure Container Apps (docs/deployment.md, "Azure Container Apps"):
#
#   browser ──https──▶ portcullis (external ingress, ≥ 2 replicas) ──▶ spa, api (internal ingress)
#                          │
#                          └── Azure Cache for Redis (TLS, port 6380): shared sessions
#
# Needs the Azure CLI (`az login`, extension `containerapp`) and openssl. Settings come from the
# environment; the required ones:
#   PORTCULLIS_IMAGE  e.g. myregistry.azurecr.io/portcullis:0.1.0 (docker/Dockerfile)
#   SPA_IMAGE         your SPA's image (serves the app on SPA_PORT, default 80)
#   API_IMAGE         your API's image (listens on API_PORT, default 8080)
#   OIDC_ISSUER       e.g. https://example.eu.auth0.com/
#   OIDC_CLIENT_ID    the client registered at the IdP
#   OIDC_CLIENT_SECRET
# Optional: RESOURCE_GROUP, LOCATION, ENVIRONMENT, REDIS_NAME, OIDC_AUDIENCE, SPA_PORT,
# API_PORT, SESSION_KEYS (comma-separated, reused across deployments so sessions survive).
# Safe to run again: every step updates what exists.
set -euo pipefail

: "${PORTCULLIS_IMAGE:?set PORTCULLIS_IMAGE}" "${SPA_IMAGE:?set SPA_IMAGE}" "${API_IMAGE:?set API_IMAGE}"
: "${OIDC_ISSUER:?set OIDC_ISSUER}" "${OIDC_CLIENT_ID:?set OIDC_CLIENT_ID}"
: "${OIDC_CLIENT_SECRET:?set OIDC_CLIENT_SECRET}"
RESOURCE_GROUP=${RESOURCE_GROUP:-portcullis}
LOCATION=${LOCATION:-westeurope}
ENVIRONMENT=${ENVIRONMENT:-portcullis-env}
REDIS_NAME=${REDIS_NAME:-portcullis-sessions-$RANDOM}
SPA_PORT=${SPA_PORT:-80}
API_PORT=${API_PORT:-8080}
# Session encryption keys must be the same on every replica and survive redeployments.
SESSION_KEYS=${SESSION_KEYS:-$(openssl rand -base64 32)}

say() { printf '\n==> %s\n' "$*"; }

say "resource group $RESOURCE_GROUP in $LOCATION"
az group create --name "$RESOURCE_GROUP" --location "$LOCATION" --output none

say "Log Analytics workspace and Container Apps environment"
az monitor log-analytics workspace create --resource-group "$RESOURCE_GROUP" \
  --workspace-name "$ENVIRONMENT-logs" --location "$LOCATION" --output none
WORKSPACE_ID=$(az monitor log-analytics workspace show --resource-group "$RESOURCE_GROUP" \
  --workspace-name "$ENVIRONMENT-logs" --query customerId --output tsv)
WORKSPACE_KEY=$(az monitor log-analytics workspace get-shared-keys --resource-group "$RESOURCE_GROUP" \
  --workspace-name "$ENVIRONMENT-logs" --query primarySharedKey --output tsv)
az containerapp env create --name "$ENVIRONMENT" --resource-group "$RESOURCE_GROUP" \
  --location "$LOCATION" --logs-workspace-id "$WORKSPACE_ID" --logs-workspace-key "$WORKSPACE_KEY" \
  --output none

say "Azure Cache for Redis $REDIS_NAME (TLS only; creating one takes 15-20 minutes)"
if ! az redis show --name "$REDIS_NAME" --resource-group "$RESOURCE_GROUP" --output none 2>/dev/null; then
  az redis create --name "$REDIS_NAME" --resource-group "$RESOURCE_GROUP" --location "$LOCATION" \
    --sku Standard --vm-size c0 --minimum-tls-version 1.2 --output none
fi
REDIS_HOST=$(az redis show --name "$REDIS_NAME" --resource-group "$RESOURCE_GROUP" --query hostName --output tsv)
REDIS_KEY=$(az redis list-keys --name "$REDIS_NAME" --resource-group "$RESOURCE_GROUP" --query primaryKey --output tsv)
# The StackExchange.Redis form the portal shows; Portcullis reads it as is (TLS on 6380).
REDIS_CONNECTION_STRING="$REDIS_HOST:6380,password=$REDIS_KEY,ssl=True,abortConnect=False"

say "SPA and API with internal ingress: reachable only from inside the environment"
for app in spa api; do
  image=$SPA_IMAGE port=$SPA_PORT
  [ "$app" = api ] && image=$API_IMAGE port=$API_PORT
  az containerapp create --name "$app" --resource-group "$RESOURCE_GROUP" \
    --environment "$ENVIRONMENT" --image "$image" --target-port "$port" \
    --ingress internal --min-replicas 1 --output none
done
SPA_FQDN=$(az containerapp show --name spa --resource-group "$RESOURCE_GROUP" \
  --query properties.configuration.ingress.fqdn --output tsv)
API_FQDN=$(az containerapp show --name api --resource-group "$RESOURCE_GROUP" \
  --query properties.configuration.ingress.fqdn --output tsv)

say "Portcullis with external ingress, at least 2 replicas"
# Its public name is known once the app exists: create it, then set the settings that use it.
az containerapp create --name portcullis --resource-group "$RESOURCE_GROUP" \
  --environment "$ENVIRONMENT" --image "$PORTCULLIS_IMAGE" --target-port 8080 \
  --ingress external --min-replicas 2 --max-replicas 10 \
  --secrets "oidc-client-secret=$OIDC_CLIENT_SECRET" "session-keys=$SESSION_KEYS" \
  "redis-connection-string=$REDIS_CONNECTION_STRING" \
  --output none
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
)
if [ -n "${OIDC_AUDIENCE:-}" ]; then
  ENV_VARS+=("PORTCULLIS__OIDC__AUTHORIZE_PARAMS__AUDIENCE=${OIDC_AUDIENCE}")
fi
# One update sets the variables and the probes (a YAML update replaces the container's whole
# definition, so both go together). Probes use the admin port, which the ingress does not expose.
{
  cat <<YAML
properties:
  template:
    containers:
      - name: portcullis
        image: ${PORTCULLIS_IMAGE}
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
          - type: Liveness
            httpGet: { path: /healthz, port: 9090 }
            periodSeconds: 10
          - type: Readiness
            httpGet: { path: /readyz, port: 9090 }
            periodSeconds: 5
YAML
} > "${TMPDIR:-/tmp}/portcullis-aca.yaml"
az containerapp update --name portcullis --resource-group "$RESOURCE_GROUP" \
  --yaml "${TMPDIR:-/tmp}/portcullis-aca.yaml" --output none
rm -f "${TMPDIR:-/tmp}/portcullis-aca.yaml"

say "done"
cat <<EOF

  Portcullis: https://${PORTCULLIS_FQDN}

  Register at the IdP (Auth0: Applications -> your app -> Settings):
    Allowed Callback URLs:  https://${PORTCULLIS_FQDN}/signin-oidc
    Allowed Logout URLs:    https://${PORTCULLIS_FQDN}/signout-callback-oidc
    Back-channel logout:    https://${PORTCULLIS_FQDN}/bff/backchannel (where supported)
  Keep SESSION_KEYS for the next deployment (sessions survive it): rerun with
    SESSION_KEYS='<the value in the portcullis app's secret session-keys>'
EOF
