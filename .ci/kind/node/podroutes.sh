#!/bin/bash
# cka-sim's pod network for offline kind clusters (the role kindnetd plays online): on
# every node, a bridge CNI config for the node's own podCIDR, and a route to every other
# node's podCIDR through that node's InternalIP. Runs as a DaemonSet with the host's
# network; kubeadm's controller-manager allocates the podCIDRs (--allocate-node-cidrs).
set -u
: "${NODE_NAME:?}"
server=${CONTROL_PLANE_ENDPOINT:+https://$CONTROL_PLANE_ENDPOINT}
server=${server:-https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT}
sa=/var/run/secrets/kubernetes.io/serviceaccount
k() {
    kubectl --server "$server" --certificate-authority "$sa/ca.crt" \
        --token "$(cat "$sa/token")" "$@"
}
conf=/etc/cni/net.d/10-cka-sim.conflist
while true; do
    lines=$(k get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}') || { sleep 2; continue; }
    while read -r name cidr ip; do
        [ -n "$cidr" ] && [ -n "$ip" ] || continue
        if [ "$name" = "$NODE_NAME" ]; then
            want=$(cat <<JSON
{
  "cniVersion": "0.4.0",
  "name": "cka-sim",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
)
            if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
                printf '%s\n' "$want" > "$conf.tmp" && mv "$conf.tmp" "$conf"
                echo "node $name: pod network $cidr"
            fi
        else
            if ! ip route show "$cidr" | grep -q "via $ip "; then
                ip route replace "$cidr" via "$ip" && echo "route $cidr via $ip ($name)"
            fi
        fi
    done <<< "$lines"
    sleep 5
done
