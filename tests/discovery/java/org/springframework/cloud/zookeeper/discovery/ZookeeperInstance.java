// The payload class Spring Cloud Zookeeper registers instances with (Spring is not packaged in
// Debian): same fully qualified name and JSON properties (id, name, metadata), so Curator's
// serializer treats rpcboot's nodes exactly as it treats Spring's.
package org.springframework.cloud.zookeeper.discovery;

import java.util.HashMap;
import java.util.Map;

public class ZookeeperInstance {
  private String id;
  private String name;
  private Map<String, String> metadata = new HashMap<>();

  public ZookeeperInstance() {}

  public ZookeeperInstance(String id, String name, Map<String, String> metadata) {
    this.id = id;
    this.name = name;
    this.metadata = metadata;
  }

  public String getId() { return id; }
  public void setId(String id) { this.id = id; }
  public String getName() { return name; }
  public void setName(String name) { this.name = name; }
  public Map<String, String> getMetadata() { return metadata; }
  public void setMetadata(Map<String, String> metadata) { this.metadata = metadata; }
}
