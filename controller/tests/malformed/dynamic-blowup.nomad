# Three nested dynamic blocks of 1,000 each would generate a billion port blocks.
job "web" {
  group "web" {
    network {
      dynamic "port" {
        for_each = range(1000)
        labels   = ["p${port.key}"]
        content {
          dynamic "x" {
            for_each = range(1000)
            content {
              dynamic "y" {
                for_each = range(1000)
                content {}
              }
            }
          }
        }
      }
    }
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
